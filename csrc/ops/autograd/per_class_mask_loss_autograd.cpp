// Autograd of maskx::per_class_mask_loss, in C++ like the other maskx ops: the forward
// and backward passes run no Python. Both call the ops below autograd, so every
// backend's kernel (and the fake kernels under torch.compile) serves.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

namespace maskx {
namespace mask_logits {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptionalTensor = std::optional<at::Tensor>;

at::Tensor forward_op(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const at::Tensor& targets,
    const OptionalTensor& class_bias,
    const OptionalTensor& agnostic_logits,
    const OptionalTensor& valid) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::per_class_mask_loss", "")
                       .typed<at::Tensor(
                           const at::Tensor&,
                           const at::Tensor&,
                           const at::Tensor&,
                           const at::Tensor&,
                           const OptionalTensor&,
                           const OptionalTensor&,
                           const OptionalTensor&)>();
  return op.call(features, class_weights, classes, targets, class_bias, agnostic_logits, valid);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_op(
    const at::Tensor& grad,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const at::Tensor& targets,
    const OptionalTensor& class_bias,
    const OptionalTensor& agnostic_logits,
    const OptionalTensor& valid) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::_per_class_mask_loss_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&,
                           const at::Tensor&,
                           const at::Tensor&,
                           const at::Tensor&,
                           const at::Tensor&,
                           const OptionalTensor&,
                           const OptionalTensor&,
                           const OptionalTensor&)>();
  return op.call(grad, features, class_weights, classes, targets, class_bias, agnostic_logits, valid);
}

OptionalTensor present(const at::Tensor& t) {
  return t.defined() ? OptionalTensor(t) : std::nullopt;
}

class PerClassMaskLoss : public torch::autograd::Function<PerClassMaskLoss> {
 public:
  static at::Tensor forward(
      AutogradContext* ctx,
      const at::Tensor& features,
      const at::Tensor& class_weights,
      const at::Tensor& classes,
      const at::Tensor& targets,
      const OptionalTensor& class_bias,
      const OptionalTensor& agnostic_logits,
      const OptionalTensor& valid) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward(
        {features,
         class_weights,
         classes,
         targets,
         class_bias.value_or(at::Tensor()),
         agnostic_logits.value_or(at::Tensor()),
         valid.value_or(at::Tensor())});
    return forward_op(features, class_weights, classes, targets, class_bias, agnostic_logits, valid);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list s = ctx->get_saved_variables();
    const bool has_bias = s[4].defined(), has_agnostic = s[5].defined();
    auto [grad_features, grad_weights, grad_bias, grad_agnostic] =
        backward_op(grad_outputs[0], s[0], s[1], s[2], s[3], present(s[4]), present(s[5]), present(s[6]));
    return {
        grad_features,
        grad_weights,
        at::Tensor(),
        at::Tensor(),
        has_bias ? grad_bias : at::Tensor(),
        has_agnostic ? grad_agnostic : at::Tensor(),
        at::Tensor()};
  }
};

at::Tensor per_class_mask_loss_autograd(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const at::Tensor& targets,
    const OptionalTensor& class_bias,
    const OptionalTensor& agnostic_logits,
    const OptionalTensor& valid) {
  return PerClassMaskLoss::apply(features, class_weights, classes, targets, class_bias, agnostic_logits, valid);
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, Autograd, m) {
  m.impl("per_class_mask_loss", &per_class_mask_loss_autograd);
}

} // namespace mask_logits
} // namespace maskx
