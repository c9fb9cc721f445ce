#pragma once
// The four RoIAlign ops, written once over a device's two pyramid functions: the
// single-level op is the one-level pyramid. The argument checks of every device run
// here (roi_align_checks.h), so the pyramid functions receive valid arguments; the CPU
// kernel still checks the RoI values it reads.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "ops/roi_align_checks.h"

namespace maskx {
namespace roi_align {

using PyramidForward = at::Tensor (*)(
    at::TensorList,
    const at::Tensor&,
    const at::Tensor*,
    at::ArrayRef<double>,
    int64_t,
    int64_t,
    int64_t,
    bool);
using PyramidBackward = std::vector<at::Tensor> (*)(
    const at::Tensor&,
    const at::Tensor&,
    const at::Tensor*,
    at::ArrayRef<double>,
    int64_t,
    int64_t,
    int64_t,
    int64_t,
    at::ArrayRef<int64_t>,
    at::ArrayRef<int64_t>,
    int64_t,
    bool,
    bool);

template <PyramidForward forward, PyramidBackward backward>
struct EntryPoints {
  static at::Tensor roi_align(
      const at::Tensor& input,
      const at::Tensor& rois,
      double spatial_scale,
      int64_t pooled_h,
      int64_t pooled_w,
      int64_t sampling_ratio,
      bool aligned) {
    const char* op = "roi_align";
    check_features(op, "input", input);
    check_rois(op, rois, "input", input);
    check_pooling_args(op, {spatial_scale}, pooled_h, pooled_w);
    return forward({input}, rois, nullptr, {spatial_scale}, pooled_h, pooled_w, sampling_ratio, aligned);
  }

  static at::Tensor roi_align_backward(
      const at::Tensor& grad,
      const at::Tensor& rois,
      double spatial_scale,
      int64_t pooled_h,
      int64_t pooled_w,
      int64_t batch,
      int64_t channels,
      int64_t height,
      int64_t width,
      int64_t sampling_ratio,
      bool aligned,
      bool channels_last) {
    check_backward_args(
        "_roi_align_backward", grad, rois, {spatial_scale}, pooled_h, pooled_w, channels, {height}, {width});
    return backward(
        grad,
        rois,
        nullptr,
        {spatial_scale},
        pooled_h,
        pooled_w,
        batch,
        channels,
        {height},
        {width},
        sampling_ratio,
        aligned,
        channels_last)[0];
  }

  static at::Tensor multi_scale_roi_align(
      at::TensorList features,
      const at::Tensor& rois,
      const at::Tensor& levels,
      at::ArrayRef<double> spatial_scales,
      int64_t pooled_h,
      int64_t pooled_w,
      int64_t sampling_ratio,
      bool aligned) {
    const char* op = "multi_scale_roi_align";
    check_pyramid(op, features, spatial_scales);
    check_rois(op, rois, "features", features[0]);
    check_levels(op, levels, rois);
    check_pooling_args(op, spatial_scales, pooled_h, pooled_w);
    return forward(features, rois, &levels, spatial_scales, pooled_h, pooled_w, sampling_ratio, aligned);
  }

  static std::vector<at::Tensor> multi_scale_roi_align_backward(
      const at::Tensor& grad,
      const at::Tensor& rois,
      const at::Tensor& levels,
      at::ArrayRef<double> spatial_scales,
      int64_t pooled_h,
      int64_t pooled_w,
      int64_t batch,
      int64_t channels,
      at::IntArrayRef heights,
      at::IntArrayRef widths,
      int64_t sampling_ratio,
      bool aligned,
      bool channels_last) {
    const char* op = "_multi_scale_roi_align_backward";
    check_backward_args(op, grad, rois, spatial_scales, pooled_h, pooled_w, channels, heights, widths);
    check_levels(op, levels, rois);
    return backward(
        grad,
        rois,
        &levels,
        spatial_scales,
        pooled_h,
        pooled_w,
        batch,
        channels,
        heights,
        widths,
        sampling_ratio,
        aligned,
        channels_last);
  }

  static void register_kernels(torch::Library& m) {
    m.impl("roi_align", &roi_align);
    m.impl("_roi_align_backward", &roi_align_backward);
    m.impl("multi_scale_roi_align", &multi_scale_roi_align);
    m.impl("_multi_scale_roi_align_backward", &multi_scale_roi_align_backward);
  }
};

} // namespace roi_align
} // namespace maskx
