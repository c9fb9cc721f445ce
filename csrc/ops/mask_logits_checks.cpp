// Argument checks of per_class_mask_logits and per_class_mask_loss (declared in
// mask_logits_checks.h).
#include "ops/mask_logits_checks.h"

namespace maskx {
namespace mask_logits {

void check_same(const char* op, const char* name, const at::Tensor& t, const at::Tensor& features) {
  TORCH_CHECK_VALUE(
      t.scalar_type() == features.scalar_type(),
      op,
      ": ",
      name,
      " must have the features' dtype (",
      features.scalar_type(),
      "), got ",
      t.scalar_type());
  TORCH_CHECK_VALUE(
      t.device() == features.device(),
      op,
      ": ",
      name,
      " is on ",
      t.device(),
      " but the features are on ",
      features.device());
}

void check_logits_args(
    const char* op,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits) {
  TORCH_CHECK_VALUE(
      features.dim() == 4, op, ": features must be a 4-d [R, K, H, W] tensor, got shape ", features.sizes());
  TORCH_CHECK_VALUE(
      at::isFloatingType(features.scalar_type()),
      op,
      ": features must be float64, float32, float16 or bfloat16, got ",
      features.scalar_type());
  TORCH_CHECK_VALUE(
      class_weights.dim() == 2 && class_weights.size(1) == features.size(1),
      op,
      ": class_weights must be a [C, K] tensor with K = ",
      features.size(1),
      " (the features' channels), got shape ",
      class_weights.sizes());
  check_same(op, "class_weights", class_weights, features);
  TORCH_CHECK_VALUE(
      classes.dim() == 1 && classes.size(0) == features.size(0),
      op,
      ": classes must be a [R] tensor with R = ",
      features.size(0),
      ", got shape ",
      classes.sizes());
  TORCH_CHECK_VALUE(classes.scalar_type() == at::kLong, op, ": classes must be int64, got ", classes.scalar_type());
  TORCH_CHECK_VALUE(
      classes.device() == features.device(),
      op,
      ": classes are on ",
      classes.device(),
      " but the features are on ",
      features.device());
  if (class_bias.has_value()) {
    TORCH_CHECK_VALUE(
        class_bias->dim() == 1 && class_bias->size(0) == class_weights.size(0),
        op,
        ": class_bias must be a [C] tensor with C = ",
        class_weights.size(0),
        ", got shape ",
        class_bias->sizes());
    check_same(op, "class_bias", *class_bias, features);
  }
  if (agnostic_logits.has_value()) {
    TORCH_CHECK_VALUE(
        agnostic_logits->dim() == 3 && agnostic_logits->size(0) == features.size(0) &&
            agnostic_logits->size(1) == features.size(2) && agnostic_logits->size(2) == features.size(3),
        op,
        ": agnostic_logits must be a [R, H, W] tensor matching the features ",
        features.sizes(),
        ", got shape ",
        agnostic_logits->sizes());
    check_same(op, "agnostic_logits", *agnostic_logits, features);
  }
}

void check_grad(const char* op, const at::Tensor& grad, const at::Tensor& features) {
  TORCH_CHECK_VALUE(
      grad.dim() == 3 && grad.size(0) == features.size(0) && grad.size(1) == features.size(2) &&
          grad.size(2) == features.size(3),
      op,
      ": grad must be a [R, H, W] tensor matching the features ",
      features.sizes(),
      ", got shape ",
      grad.sizes());
  check_same(op, "grad", grad, features);
}

void check_loss_args(const at::Tensor& features, const at::Tensor& targets, const std::optional<at::Tensor>& valid) {
  const char* op = "per_class_mask_loss";
  TORCH_CHECK_VALUE(
      targets.dim() == 3 && targets.size(0) == features.size(0) && targets.size(1) == features.size(2) &&
          targets.size(2) == features.size(3),
      op,
      ": targets must be a [R, H, W] tensor matching the features ",
      features.sizes(),
      ", got shape ",
      targets.sizes());
  check_same(op, "targets", targets, features);
  if (valid.has_value()) {
    TORCH_CHECK_VALUE(
        valid->dim() == 1 && valid->size(0) == features.size(0),
        op,
        ": valid must be a [R] tensor with R = ",
        features.size(0),
        ", got shape ",
        valid->sizes());
    TORCH_CHECK_VALUE(valid->scalar_type() == at::kBool, op, ": valid must be bool, got ", valid->scalar_type());
    TORCH_CHECK_VALUE(
        valid->device() == features.device(),
        op,
        ": valid is on ",
        valid->device(),
        " but the features are on ",
        features.device());
  }
}

void check_loss_grad(const char* op, const at::Tensor& grad) {
  TORCH_CHECK_VALUE(grad.numel() == 1, op, ": grad must hold one value, got shape ", grad.sizes());
}

} // namespace mask_logits
} // namespace maskx
