// Schema of maskx::batched_nms, torchvision's batched_nms signature: NMS within each
// value of idxs, indices kept in decreasing score order (ties: lower index first).
// Kernels: ops/cpu/batched_nms_kernel.cpp, ops/cuda/batched_nms_kernel.cu.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  m.def("batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor");
}
