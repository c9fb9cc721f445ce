// Schema of maskx::multiclass_nms, a detector's post-processing step in one call: keep
// scores above score_threshold, NMS per class, the best max_detections. Returns
// (boxes [M, 4], scores [M], labels [M] int64, indices [M] int64 into the input rows).
// Kernels: ops/cpu/multiclass_nms_kernel.cpp, ops/cuda/multiclass_nms_kernel.cu.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  m.def(
      "multiclass_nms(Tensor boxes, Tensor scores, float score_threshold, float iou_threshold, "
      "int max_detections) -> (Tensor, Tensor, Tensor, Tensor)");
}
