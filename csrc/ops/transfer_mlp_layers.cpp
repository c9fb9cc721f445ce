// The device-independent part of maskx::transfer_mlp (declared in transfer_mlp_layers.h).
#include "ops/transfer_mlp_layers.h"

namespace maskx {
namespace transfer_mlp {
namespace {

void check_args(const at::Tensor& x, at::TensorList weights, at::TensorList biases, double slope) {
  const char* op = "transfer_mlp";
  TORCH_CHECK_VALUE(slope >= 0, op, ": negative_slope must be non-negative, got ", slope);
  TORCH_CHECK_VALUE(x.dim() == 2, op, ": x must be a 2-d [C, D] tensor, got shape ", x.sizes());
  TORCH_CHECK_VALUE(
      at::isFloatingType(x.scalar_type()),
      op,
      ": x must be a floating-point tensor (float64, float32, float16 or bfloat16), got ",
      x.scalar_type());
  TORCH_CHECK_VALUE(
      !weights.empty() && weights.size() <= 3, op, ": expects 1 to 3 layers, got ", weights.size(), " weights");
  TORCH_CHECK_VALUE(
      biases.size() == weights.size(), op, ": got ", weights.size(), " weights but ", biases.size(), " biases");
  int64_t width = x.size(1);
  for (size_t i = 0; i < weights.size(); ++i) {
    TORCH_CHECK_VALUE(
        weights[i].dim() == 2 && weights[i].size(1) == width,
        op,
        ": weights[",
        i,
        "] must be a [D_out, ",
        width,
        "] tensor to chain, got shape ",
        weights[i].sizes());
    width = weights[i].size(0);
    TORCH_CHECK_VALUE(
        biases[i].dim() == 1 && biases[i].size(0) == width,
        op,
        ": biases[",
        i,
        "] must be a [",
        width,
        "] tensor, got shape ",
        biases[i].sizes());
    for (const at::Tensor* t : {&weights[i], &biases[i]}) {
      TORCH_CHECK_VALUE(
          t->scalar_type() == x.scalar_type() && t->device() == x.device(),
          op,
          ": every weight and bias must share x's dtype and device (",
          x.scalar_type(),
          ", ",
          x.device(),
          "), layer ",
          i,
          " has ",
          t->scalar_type(),
          " on ",
          t->device());
    }
  }
}

void check_backward_args(const at::Tensor& grad, const at::Tensor& x, at::TensorList hidden, at::TensorList weights) {
  const char* op = "transfer_mlp_backward";
  TORCH_CHECK_VALUE(
      !weights.empty() && weights.size() <= 3 && hidden.size() + 1 == weights.size(),
      op,
      ": expects 1 to 3 weights and one hidden activation fewer, got ",
      weights.size(),
      " and ",
      hidden.size());
  const int64_t out_width = weights.back().size(0);
  TORCH_CHECK_VALUE(
      grad.dim() == 2 && grad.size(0) == x.size(0) && grad.size(1) == out_width,
      op,
      ": grad must be a [",
      x.size(0),
      ", ",
      out_width,
      "] tensor, got shape ",
      grad.sizes());
  TORCH_CHECK_VALUE(
      grad.scalar_type() == x.scalar_type() && grad.device() == x.device(),
      op,
      ": grad must share x's dtype and device");
  for (size_t i = 0; i < hidden.size(); ++i) {
    TORCH_CHECK_VALUE(
        hidden[i].dim() == 2 && hidden[i].size(0) == x.size(0) && hidden[i].size(1) == weights[i].size(0),
        op,
        ": hidden[",
        i,
        "] must be a [",
        x.size(0),
        ", ",
        weights[i].size(0),
        "] tensor, got shape ",
        hidden[i].sizes());
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
