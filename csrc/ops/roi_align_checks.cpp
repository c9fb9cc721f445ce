// Argument checks of roi_align and multi_scale_roi_align (declared in roi_align_checks.h).
#include "ops/roi_align_checks.h"

#include <cmath>

namespace maskx {
namespace roi_align {

void check_pooling_args(double spatial_scale, int64_t pooled_h, int64_t pooled_w) {
  TORCH_CHECK_VALUE(
      pooled_h > 0 && pooled_w > 0, "roi_align: output size must be positive, got (", pooled_h, ", ", pooled_w, ")");
  TORCH_CHECK_VALUE(
      std::isfinite(spatial_scale) && spatial_scale > 0,
      "roi_align: spatial_scale must be positive and finite, got ",
      spatial_scale);
}

void check_rois(const at::Tensor& rois, const at::Tensor& like) {
  TORCH_CHECK_VALUE(
      rois.dim() == 2 && rois.size(1) == 5, "roi_align: rois must be a [K, 5] tensor, got shape ", rois.sizes());
  TORCH_CHECK_VALUE(
      rois.scalar_type() == like.scalar_type(),
      "roi_align: rois must have the input's dtype (",
      like.scalar_type(),
      "), got ",
      rois.scalar_type());
  TORCH_CHECK_VALUE(
      rois.device() == like.device(), "roi_align: rois are on ", rois.device(), " but the input is on ", like.device());
}

void check_features(const at::Tensor& input) {
  TORCH_CHECK_VALUE(input.dim() == 4, "roi_align: input must be a 4-d [N, C, H, W] tensor, got shape ", input.sizes());
  TORCH_CHECK_VALUE(
      at::isFloatingType(input.scalar_type()),
      "roi_align: input must be float64, float32, float16 or bfloat16, got ",
      input.scalar_type());
}

void check_levels(const at::Tensor& levels, const at::Tensor& rois, size_t num_levels) {
  TORCH_CHECK_VALUE(num_levels > 0, "multi_scale_roi_align: needs at least one feature level");
  TORCH_CHECK_VALUE(
      levels.dim() == 1 && levels.size(0) == rois.size(0),
      "multi_scale_roi_align: levels must be a [K] tensor matching rois, got shape ",
      levels.sizes());
  TORCH_CHECK_VALUE(
      levels.scalar_type() == at::kLong, "multi_scale_roi_align: levels must be int64, got ", levels.scalar_type());
  TORCH_CHECK_VALUE(
      levels.device() == rois.device(),
      "multi_scale_roi_align: levels are on ",
      levels.device(),
      " but rois are on ",
      rois.device());
}

void check_backward_args(
    const at::Tensor& grad,
    const at::Tensor& rois,
    at::ArrayRef<double> spatial_scales,
    int64_t pooled_h,
    int64_t pooled_w,
    int64_t channels,
    at::ArrayRef<int64_t> heights,
    at::ArrayRef<int64_t> widths) {
  TORCH_CHECK_VALUE(
      heights.size() == widths.size() && heights.size() == spatial_scales.size(),
      "roi_align backward: one height, width and scale per level expected");
  check_rois(rois, grad);
  TORCH_CHECK_VALUE(
      grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels && grad.size(2) == pooled_h &&
          grad.size(3) == pooled_w,
      "roi_align backward: grad has shape ",
      grad.sizes(),
      ", expected [",
      rois.size(0),
      ", ",
      channels,
      ", ",
      pooled_h,
      ", ",
      pooled_w,
      "]");
  for (double scale : spatial_scales) {
    check_pooling_args(scale, pooled_h, pooled_w);
  }
}

void check_pyramid(at::TensorList features, at::ArrayRef<double> spatial_scales) {
  TORCH_CHECK_VALUE(
      spatial_scales.size() == features.size(),
      "multi_scale_roi_align: got ",
      features.size(),
      " feature levels but ",
      spatial_scales.size(),
      " spatial scales");
  for (size_t l = 0; l < features.size(); ++l) {
    check_features(features[l]);
    TORCH_CHECK_VALUE(
        features[l].size(0) == features[0].size(0) && features[l].size(1) == features[0].size(1),
        "multi_scale_roi_align: level ",
        l,
        " has shape ",
        features[l].sizes(),
        ", whose batch size or channels differ from level 0's ",
        features[0].sizes());
    TORCH_CHECK_VALUE(
        features[l].scalar_type() == features[0].scalar_type() && features[l].device() == features[0].device(),
        "multi_scale_roi_align: every level must share level 0's dtype and device");
  }
}

} // namespace roi_align
} // namespace maskx
