#pragma once
// Argument checks shared by the CPU and CUDA kernels of per_class_mask_logits and
// per_class_mask_loss (the name: mask_logits_common.h). Wording and helpers:
// ops/checks.h. Defined once, in the .cpp beside this header; the CPU and CUDA kernels
// call them first.
#include <ATen/ATen.h>

namespace maskx {
namespace mask_logits {

// features [R, K, H, W], class_weights [C, K], classes int64 [R], class_bias [C],
// agnostic_logits [R, H, W].
void check_logits_args(
    const char* op,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits);

// The gradient of the logits: [R, H, W] like the output.
void check_grad(const char* op, const at::Tensor& grad, const at::Tensor& features);

// targets [R, H, W] in the features' dtype, valid bool [R].
void check_loss_args(const at::Tensor& features, const at::Tensor& targets, const std::optional<at::Tensor>& valid);

// The loss's gradient: one value.
void check_loss_grad(const char* op, const at::Tensor& grad);

} // namespace mask_logits
} // namespace maskx
