// Schema of maskx::nms, torchvision's nms signature: indices of the kept boxes in
// decreasing score order (ties: lower index first). Overlap rule: ops/nms_common.h.
// Kernels: ops/cpu/nms_kernel.cpp, ops/cuda/nms_kernel.cu.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
}
