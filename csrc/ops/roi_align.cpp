// Schema of maskx::roi_align, torchvision's roi_align signature (see ops/roi_align_common.h
// for the sampling rule). Kernels: ops/cpu/roi_align_kernel.cpp, ops/cuda/roi_align_kernel.cu.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  // The backward's channels_last gives the input gradient the input's memory format.
  m.def(
      "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor");
  m.def(
      "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
      "int sampling_ratio, bool aligned, bool channels_last=False) -> Tensor");
}
