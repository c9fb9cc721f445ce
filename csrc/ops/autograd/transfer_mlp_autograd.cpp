// Autograd of maskx::transfer_mlp, in C++ so that T's forward and backward cost no
// Python: at COCO's 81 classes the matrix products take a few milliseconds, and a Python
// autograd wrapper (argument flattening, context, backward closure) added a tenth of that.
// Both directions call the ops below autograd, so every backend's kernel (CPU,
// CUDA, the fake kernels) serves.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

namespace maskx {
namespace transfer_mlp {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::tuple<at::Tensor, std::vector<at::Tensor>> forward_op(
    const at::Tensor& x,
    at::TensorList weights,
    at::TensorList biases,
    double negative_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::transfer_mlp", "")
                       .typed<std::tuple<at::Tensor, std::vector<at::Tensor>>(
                           const at::Tensor&, at::TensorList, at::TensorList, double)>();
  return op.call(x, weights, biases, negative_slope);
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor> backward_op(
    const at::Tensor& grad,
    const at::Tensor& x,
    at::TensorList hidden,
    at::TensorList weights,
    double negative_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::_transfer_mlp_backward", "")
                       .typed<std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, at::TensorList, at::TensorList, double)>();
  return op.call(grad, x, hidden, weights, negative_slope);
}

class TransferMLP : public torch::autograd::Function<TransferMLP> {
 public:
  // Inputs flatten to x, weights..., biases..., negative_slope; outputs to the result
  // and the hidden activations (saved for the backward pass, not differentiable).
  static variable_list forward(
      AutogradContext* ctx,
      const at::Tensor& x,
      at::TensorList weights,
      at::TensorList biases,
      double negative_slope) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [out, hidden] = forward_op(x, weights, biases, negative_slope);
    std::vector<at::Tensor> saved{x};
    saved.insert(saved.end(), hidden.begin(), hidden.end());
    saved.insert(saved.end(), weights.begin(), weights.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["negative_slope"] = negative_slope;
    ctx->saved_data["num_layers"] = static_cast<int64_t>(weights.size());
    variable_list outputs{out};
    outputs.insert(outputs.end(), hidden.begin(), hidden.end());
    ctx->mark_non_differentiable(variable_list(hidden.begin(), hidden.end()));
    return outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const int64_t num_layers = ctx->saved_data["num_layers"].toInt();
    const at::Tensor& x = saved[0];
    const variable_list hidden(saved.begin() + 1, saved.begin() + num_layers);
    const variable_list weights(saved.begin() + num_layers, saved.end());
    auto [grad_weights, grad_biases, grad_first] =
        backward_op(grad_outputs[0], x, hidden, weights, ctx->saved_data["negative_slope"].toDouble());
    variable_list grads{ctx->needs_input_grad(0) ? grad_first.mm(weights[0]) : at::Tensor()};
    grads.insert(grads.end(), grad_weights.begin(), grad_weights.end());
    grads.insert(grads.end(), grad_biases.begin(), grad_biases.end());
    grads.emplace_back(); // negative_slope
    return grads;
  }
};

std::tuple<at::Tensor, std::vector<at::Tensor>> transfer_mlp_autograd(
    const at::Tensor& x,
    at::TensorList weights,
    at::TensorList biases,
    double negative_slope) {
  variable_list outputs = TransferMLP::apply(x, weights, biases, negative_slope);
  return {outputs[0], std::vector<at::Tensor>(outputs.begin() + 1, outputs.end())};
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, Autograd, m) {
  m.impl("transfer_mlp", &transfer_mlp_autograd);
}

} // namespace transfer_mlp
} // namespace maskx
