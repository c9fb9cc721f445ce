// Autograd of maskx::per_class_mask_logits, in C++ like the other maskx ops: the forward
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

at::Tensor forward_op(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits,
    bool sigmoid) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::per_class_mask_logits", "")
                       .typed<at::Tensor(
                           const at::Tensor&,
                           const at::Tensor&,
                           const at::Tensor&,
                           const std::optional<at::Tensor>&,
                           const std::optional<at::Tensor>&,
                           bool)>();
  return op.call(features, class_weights, classes, class_bias, agnostic_logits, sigmoid);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_op(
    const at::Tensor& grad,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::_per_class_mask_logits_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, features, class_weights, classes);
}

class PerClassMaskLogits : public torch::autograd::Function<PerClassMaskLogits> {
 public:
  static at::Tensor forward(
      AutogradContext* ctx,
      const at::Tensor& features,
      const at::Tensor& class_weights,
      const at::Tensor& classes,
      const std::optional<at::Tensor>& class_bias,
      const std::optional<at::Tensor>& agnostic_logits,
      bool sigmoid) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor out = forward_op(features, class_weights, classes, class_bias, agnostic_logits, sigmoid);
    // With sigmoid the output (the probabilities) gives the sigmoid's derivative.
    ctx->save_for_backward({features, class_weights, classes, sigmoid ? out : at::Tensor()});
    ctx->saved_data["has_bias"] = class_bias.has_value();
    ctx->saved_data["has_agnostic"] = agnostic_logits.has_value();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &features = saved[0], &class_weights = saved[1], &classes = saved[2];
    const at::Tensor& probabilities = saved[3];
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const bool has_agnostic = ctx->saved_data["has_agnostic"].toBool();
    at::Tensor grad = grad_outputs[0];
    if (probabilities.defined()) {
      grad = grad * probabilities * (1 - probabilities);
    }
    // needs_input_grad counts tensor inputs only: features 0, class_weights 1, classes 2,
    // then class_bias (3) when given.
    at::Tensor grad_features, grad_weights, grad_bias;
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(1) || (has_bias && ctx->needs_input_grad(3))) {
      std::tie(grad_features, grad_weights, grad_bias) = backward_op(grad, features, class_weights, classes);
    }
    return {
        grad_features,
        grad_weights,
        at::Tensor(),
        has_bias ? grad_bias : at::Tensor(),
        has_agnostic ? grad : at::Tensor(),
        at::Tensor()};
  }
};

at::Tensor per_class_mask_logits_autograd(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits,
    bool sigmoid) {
  return PerClassMaskLogits::apply(features, class_weights, classes, class_bias, agnostic_logits, sigmoid);
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, Autograd, m) {
  m.impl("per_class_mask_logits", &per_class_mask_logits_autograd);
}

} // namespace mask_logits
} // namespace maskx
