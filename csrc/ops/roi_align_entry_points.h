#pragma once
// The four RoIAlign ops, written once over a device's two pyramid functions: the
// single-level op is the one-level pyramid.
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
    check_features(input);
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
    TORCH_CHECK_VALUE(!features.empty(), "multi_scale_roi_align: needs at least one feature level");
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
