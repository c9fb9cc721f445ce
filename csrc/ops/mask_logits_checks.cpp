// Argument checks of per_class_mask_logits and per_class_mask_loss (declared in
// mask_logits_checks.h). Wording and helpers: ops/checks.h.
#include "ops/mask_logits_checks.h"

#include "ops/checks.h"

namespace maskx {
namespace mask_logits {

using namespace checks;

namespace {

// [R, H, W] beside features [R, K, H, W].
bool is_pixel_map(const at::Tensor& t, const at::Tensor& features) {
  return t.dim() == 3 && t.size(0) == features.size(0) && t.size(1) == features.size(2) &&
      t.size(2) == features.size(3);
}

} // namespace

void check_logits_args(
    const char* op,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits) {
  check_shape(features.dim() == 4, op, "features", features, "[R, K, H, W]");
  check_float(op, "features", features);
  check_shape(
      class_weights.dim() == 2 && class_weights.size(1) == features.size(1),
      op,
      "class_weights",
      class_weights,
      "[C, K] with K = ",
      features.size(1),
      " (the features' channels)");
  check_like(op, "class_weights", class_weights, "features", features);
  check_shape(
      classes.dim() == 1 && classes.size(0) == features.size(0),
      op,
      "classes",
      classes,
      "[R] with R = ",
      features.size(0));
  check_dtype(op, "classes", classes, at::kLong, "int64");
  check_same_device(op, "classes", classes, "features", features);
  if (class_bias.has_value()) {
    check_shape(
        class_bias->dim() == 1 && class_bias->size(0) == class_weights.size(0),
        op,
        "class_bias",
        *class_bias,
        "[C] with C = ",
        class_weights.size(0));
    check_like(op, "class_bias", *class_bias, "features", features);
  }
  if (agnostic_logits.has_value()) {
    check_shape(
        is_pixel_map(*agnostic_logits, features),
        op,
        "agnostic_logits",
        *agnostic_logits,
        "[R, H, W] matching features ",
        features.sizes());
    check_like(op, "agnostic_logits", *agnostic_logits, "features", features);
  }
}

void check_grad(const char* op, const at::Tensor& grad, const at::Tensor& features) {
  check_shape(is_pixel_map(grad, features), op, "grad", grad, "[R, H, W] matching features ", features.sizes());
  check_like(op, "grad", grad, "features", features);
}

void check_loss_args(const at::Tensor& features, const at::Tensor& targets, const std::optional<at::Tensor>& valid) {
  const char* op = "per_class_mask_loss";
  check_shape(
      is_pixel_map(targets, features), op, "targets", targets, "[R, H, W] matching features ", features.sizes());
  check_like(op, "targets", targets, "features", features);
  if (valid.has_value()) {
    check_shape(
        valid->dim() == 1 && valid->size(0) == features.size(0),
        op,
        "valid",
        *valid,
        "[R] with R = ",
        features.size(0));
    check_dtype(op, "valid", *valid, at::kBool, "bool");
    check_same_device(op, "valid", *valid, "features", features);
  }
}

void check_loss_grad(const char* op, const at::Tensor& grad) {
  TORCH_CHECK_VALUE(grad.numel() == 1, op, ": grad must hold one value, got shape ", grad.sizes());
}

} // namespace mask_logits
} // namespace maskx
