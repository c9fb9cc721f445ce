// The device-independent part of maskx::transfer_mlp (declared in transfer_mlp_layers.h).
#include "ops/transfer_mlp_layers.h"

#include <string>

#include "ops/checks.h"

namespace maskx {
namespace transfer_mlp {
namespace {

using namespace checks;

void check_args(const at::Tensor& x, at::TensorList weights, at::TensorList biases, double slope) {
  const char* op = "transfer_mlp";
  TORCH_CHECK_VALUE(slope >= 0, op, ": negative_slope must be non-negative, got ", slope);
  check_shape(x.dim() == 2, op, "x", x, "[C, D]");
  check_float(op, "x", x);
  TORCH_CHECK_VALUE(
      !weights.empty() && weights.size() <= 3, op, ": expects 1 to 3 layers, got ", weights.size(), " weights");
  TORCH_CHECK_VALUE(
      biases.size() == weights.size(), op, ": got ", weights.size(), " weights but ", biases.size(), " biases");
  int64_t width = x.size(1);
  for (size_t i = 0; i < weights.size(); ++i) {
    const std::string weight = "weights[" + std::to_string(i) + "]";
    const std::string bias = "biases[" + std::to_string(i) + "]";
    check_shape(
        weights[i].dim() == 2 && weights[i].size(1) == width,
        op,
        weight.c_str(),
        weights[i],
        "[D_out, ",
        width,
        "] to chain");
    width = weights[i].size(0);
    check_shape(biases[i].dim() == 1 && biases[i].size(0) == width, op, bias.c_str(), biases[i], "[", width, "]");
    check_like(op, weight.c_str(), weights[i], "x", x);
    check_like(op, bias.c_str(), biases[i], "x", x);
  }
}

void check_backward_args(const at::Tensor& grad, const at::Tensor& x, at::TensorList hidden, at::TensorList weights) {
  const char* op = "_transfer_mlp_backward";
  TORCH_CHECK_VALUE(
      !weights.empty() && weights.size() <= 3 && hidden.size() + 1 == weights.size(),
      op,
      ": expects 1 to 3 weights and one hidden activation fewer, got ",
      weights.size(),
      " and ",
      hidden.size());
  const int64_t out_width = weights.back().size(0);
  check_shape(
      grad.dim() == 2 && grad.size(0) == x.size(0) && grad.size(1) == out_width,
      op,
      "grad",
      grad,
      "[",
      x.size(0),
      ", ",
      out_width,
      "]");
  check_like(op, "grad", grad, "x", x);
  for (size_t i = 0; i < hidden.size(); ++i) {
    const std::string name = "hidden[" + std::to_string(i) + "]";
    check_shape(
        hidden[i].dim() == 2 && hidden[i].size(0) == x.size(0) && hidden[i].size(1) == weights[i].size(0),
        op,
        name.c_str(),
        hidden[i],
        "[",
        x.size(0),
        ", ",
        weights[i].size(0),
        "]");
  }
}

} // namespace

std::tuple<at::Tensor, std::vector<at::Tensor>> run_layers(
    const at::Tensor& x,
    at::TensorList weights,
    at::TensorList biases,
    double negative_slope,
    LinearPass linear,
    ActivationPass activation) {
  check_args(x, weights, biases, negative_slope);
  std::vector<at::Tensor> hidden;
  at::Tensor h = x.contiguous();
  const size_t num_layers = weights.size();
  for (size_t i = 0; i < num_layers; ++i) {
    at::Tensor out = linear(h, weights[i], biases[i]);
    if (i + 1 < num_layers) {
      activation(out, negative_slope);
      hidden.push_back(out);
    }
    h = out;
  }
  return {h, hidden};
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor> run_layers_backward(
    const at::Tensor& grad,
    const at::Tensor& x,
    at::TensorList hidden,
    at::TensorList weights,
    double negative_slope,
    ActivationGradPass activation_grad) {
  check_backward_args(grad, x, hidden, weights);
  const size_t num_layers = weights.size();
  std::vector<at::Tensor> inputs{x.contiguous()};
  for (const at::Tensor& h : hidden)
    inputs.push_back(h.contiguous());
  std::vector<at::Tensor> grad_weights(num_layers), grad_biases(num_layers);
  at::Tensor g = grad.contiguous();
  for (size_t i = num_layers; i-- > 0;) {
    grad_weights[i] = at::mm(g.t(), inputs[i]);
    grad_biases[i] = g.sum(0);
    if (i == 0)
      break;
    at::Tensor next = at::mm(g, weights[i]);
    activation_grad(next, inputs[i], negative_slope);
    g = next;
  }
  // With one layer g is still `grad` (or a view of it): outputs must not alias inputs.
  return {grad_weights, grad_biases, num_layers == 1 ? g.clone() : g};
}

} // namespace transfer_mlp
} // namespace maskx
