// Schema of maskx::multi_scale_roi_align: RoIAlign over a feature pyramid in one call.
// RoI k is pooled from features[levels[k]] with spatial_scales[levels[k]]. Kernels live
// beside the single-level op's (ops/cpu/roi_align_kernel.cpp, ops/cuda/roi_align_kernel.cu).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  m.def(
      "multi_scale_roi_align(Tensor[] features, Tensor rois, Tensor levels, float[] spatial_scales, "
      "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor");
  m.def(
      "_multi_scale_roi_align_backward(Tensor grad, Tensor rois, Tensor levels, float[] spatial_scales, "
      "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
      "SymInt[] heights, SymInt[] widths, int sampling_ratio, bool aligned, bool channels_last=False) -> Tensor[]");
}
