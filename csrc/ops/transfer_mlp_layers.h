#pragma once
// The layer loop of maskx::transfer_mlp and its backward, written once for every device:
// argument checks, one matrix product per layer,
// and the backward's products. Each device's kernel file supplies the layer's product
// with its bias, and the element-wise passes: LeakyReLU in place, and its derivative
// applied to a gradient in place.
#include <ATen/ATen.h>
#include <c10/util/FunctionRef.h>

#include <tuple>
#include <vector>

namespace maskx {
namespace transfer_mlp {

// Returns h @ weight.T + bias.
using LinearPass = c10::function_ref<at::Tensor(const at::Tensor& h, const at::Tensor& weight, const at::Tensor& bias)>;
// out = LeakyReLU(out), in place.
using ActivationPass = c10::function_ref<void(at::Tensor& out, double slope)>;
// grad *= LeakyReLU'(z), in place, read from the activation h = LeakyReLU(z): with a
// non-negative slope, h > 0 exactly where z > 0.
using ActivationGradPass = c10::function_ref<void(at::Tensor& grad, const at::Tensor& activation, double slope)>;

// Returns the output and the hidden layers' activations (what the backward pass reads).
std::tuple<at::Tensor, std::vector<at::Tensor>> run_layers(
    const at::Tensor& x,
    at::TensorList weights,
    at::TensorList biases,
    double negative_slope,
    LinearPass linear,
    ActivationPass activation);

// Returns the weights' and biases' gradients and the gradient of the first layer's
// pre-activation (grad_x is it @ weights[0], formed by autograd only when x needs it).
std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor> run_layers_backward(
    const at::Tensor& grad,
    const at::Tensor& x,
    at::TensorList hidden,
    at::TensorList weights,
    double negative_slope,
    ActivationGradPass activation_grad);

} // namespace transfer_mlp
} // namespace maskx
