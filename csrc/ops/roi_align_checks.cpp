// Argument checks of roi_align and multi_scale_roi_align (declared in roi_align_checks.h).
#include "ops/roi_align_checks.h"

#include <cmath>
#include <string>

#include "ops/checks.h"

namespace maskx {
namespace roi_align {

using namespace checks;

void check_pooling_args(const char* op, at::ArrayRef<double> spatial_scales, int64_t pooled_h, int64_t pooled_w) {
  TORCH_CHECK_VALUE(
      pooled_h > 0 && pooled_w > 0, op, ": output size must be positive, got (", pooled_h, ", ", pooled_w, ")");
  for (double scale : spatial_scales) {
    TORCH_CHECK_VALUE(
        std::isfinite(scale) && scale > 0,
        op,
        spatial_scales.size() == 1 ? ": spatial_scale" : ": spatial scales",
        " must be positive and finite, got ",
        scale);
  }
}

void check_rois(const char* op, const at::Tensor& rois, const char* like_name, const at::Tensor& like) {
  check_shape(rois.dim() == 2 && rois.size(1) == 5, op, "rois", rois, "[K, 5]");
  check_like(op, "rois", rois, like_name, like);
}

void check_features(const char* op, const char* name, const at::Tensor& input) {
  check_shape(input.dim() == 4, op, name, input, "[N, C, H, W]");
  check_float(op, name, input);
}

void check_levels(const char* op, const at::Tensor& levels, const at::Tensor& rois) {
  check_shape(levels.dim() == 1 && levels.size(0) == rois.size(0), op, "levels", levels, "[K] matching rois");
  check_dtype(op, "levels", levels, at::kLong, "int64");
  check_same_device(op, "levels", levels, "rois", rois);
}

void check_pyramid(const char* op, at::TensorList features, at::ArrayRef<double> spatial_scales) {
  TORCH_CHECK_VALUE(!features.empty(), op, ": needs at least one feature level");
  TORCH_CHECK_VALUE(
      spatial_scales.size() == features.size(),
      op,
      ": ",
      features.size(),
      " levels but ",
      spatial_scales.size(),
      " scales");
  const at::Tensor& first = features[0];
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor& f = features[l];
    const std::string name = "level " + std::to_string(l);
    check_features(op, name.c_str(), f);
    TORCH_CHECK_VALUE(
        f.size(0) == first.size(0) && f.size(1) == first.size(1) && f.scalar_type() == first.scalar_type() &&
            f.device() == first.device(),
        op,
        ": ",
        name,
        " (",
        f.sizes(),
        ", ",
        f.scalar_type(),
        ", ",
        f.device(),
        ") must share batch size, channels, dtype and device with level 0 (",
        first.sizes(),
        ", ",
        first.scalar_type(),
        ", ",
        first.device(),
        ")");
  }
}

void check_backward_args(
    const char* op,
    const at::Tensor& grad,
    const at::Tensor& rois,
    at::ArrayRef<double> spatial_scales,
    int64_t pooled_h,
    int64_t pooled_w,
    int64_t channels,
    at::ArrayRef<int64_t> heights,
    at::ArrayRef<int64_t> widths) {
  TORCH_CHECK_VALUE(
      heights.size() == widths.size() && heights.size() == spatial_scales.size() && !heights.empty(),
      op,
      ": one height, width and scale per level expected");
  check_rois(op, rois, "grad", grad);
  TORCH_CHECK_VALUE(
      grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels && grad.size(2) == pooled_h &&
          grad.size(3) == pooled_w,
      op,
      ": grad has shape ",
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
  check_pooling_args(op, spatial_scales, pooled_h, pooled_w);
}

} // namespace roi_align
} // namespace maskx
