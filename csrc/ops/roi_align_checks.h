#pragma once
// Argument checks shared by the CPU and CUDA kernels of roi_align and
// multi_scale_roi_align. Failures raise ValueError in Python.
// Defined once, in the .cpp beside this header; the CPU and CUDA kernels only call them.
#include <ATen/ATen.h>

namespace maskx {
namespace roi_align {

void check_pooling_args(double spatial_scale, int64_t pooled_h, int64_t pooled_w);

void check_rois(const at::Tensor& rois, const at::Tensor& like);

void check_features(const at::Tensor& input);

void check_levels(const at::Tensor& levels, const at::Tensor& rois, size_t num_levels);

// A backward call: one height, width and scale per level, and a grad of
// [K, channels, pooled_h, pooled_w] matching the rois.
void check_backward_args(
    const at::Tensor& grad,
    const at::Tensor& rois,
    at::ArrayRef<double> spatial_scales,
    int64_t pooled_h,
    int64_t pooled_w,
    int64_t channels,
    at::ArrayRef<int64_t> heights,
    at::ArrayRef<int64_t> widths);

// Every level shares batch size, channels, dtype and device with the first.
void check_pyramid(at::TensorList features, at::ArrayRef<double> spatial_scales);

} // namespace roi_align
} // namespace maskx
