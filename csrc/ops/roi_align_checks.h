#pragma once
// Argument checks of roi_align and multi_scale_roi_align, called by the entry points
// every device shares (roi_align_entry_points.h) before a kernel runs. Wording and
// helpers: ops/checks.h. Defined once, in the .cpp beside this header.
#include <ATen/ATen.h>

namespace maskx {
namespace roi_align {

// Output size and one spatial scale per level.
void check_pooling_args(const char* op, at::ArrayRef<double> spatial_scales, int64_t pooled_h, int64_t pooled_w);

// rois [K, 5] with the dtype and device of `like` (named like_name in messages).
void check_rois(const char* op, const at::Tensor& rois, const char* like_name, const at::Tensor& like);

// One input of roi_align: a floating [N, C, H, W] tensor.
void check_features(const char* op, const char* name, const at::Tensor& input);

// The levels of multi_scale_roi_align: int64 [K] beside the rois.
void check_levels(const char* op, const at::Tensor& levels, const at::Tensor& rois);

// Every level shares batch size, channels, dtype and device with the first; one scale
// per level.
void check_pyramid(const char* op, at::TensorList features, at::ArrayRef<double> spatial_scales);

// A backward call: one height, width and scale per level, and a grad of
// [K, channels, pooled_h, pooled_w] matching the rois.
void check_backward_args(
    const char* op,
    const at::Tensor& grad,
    const at::Tensor& rois,
    at::ArrayRef<double> spatial_scales,
    int64_t pooled_h,
    int64_t pooled_w,
    int64_t channels,
    at::ArrayRef<int64_t> heights,
    at::ArrayRef<int64_t> widths);

} // namespace roi_align
} // namespace maskx
