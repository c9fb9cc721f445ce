// Schema of maskx::batched_nms, torchvision's batched_nms signature: NMS within each
// value of idxs, indices kept in decreasing score order (ties: lower index first).
// Kernels: ops/cpu/nms_kernel.cpp and ops/cuda/nms_kernel.cu, beside nms.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  m.def("batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor");
}
