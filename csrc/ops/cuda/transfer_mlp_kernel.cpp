// CUDA kernels of maskx::transfer_mlp and its backward: the layer loop of
// ops/transfer_mlp_layers.cpp on cuBLAS products (through ATen's mm) with ATen's in-place
// bias, LeakyReLU and LeakyReLU-derivative passes. T is bound by its matrix products,
// which cuBLAS runs best. Over the eager chain of linear/leaky_relu this kernel adds the
// faster product without cuBLASLt's bias epilogue, one dispatch from Python instead of
// three, no separate activation tensor, and a backward in C++. The single-launch Triton
// version is maskx_kernels/triton/transfer_mlp.py; benchmarks/RESULTS.md compares the two.
#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "ops/transfer_mlp_layers.h"

namespace maskx {
namespace transfer_mlp {
namespace {

std::tuple<at::Tensor, std::vector<at::Tensor>> transfer_mlp_forward_kernel(
    const at::Tensor& x,
    at::TensorList weights,
    at::TensorList biases,
    double negative_slope) {
  const c10::DeviceGuard guard(x.device());
  return run_layers(
      x,
      weights,
      biases,
      negative_slope,
      // A plain product, then the bias in place: for T's first layer cuBLASLt's bias
      // epilogue (addmm, what F.linear runs) is markedly slower than the plain product,
      // while a separate in-place pass over the small [classes, hidden] output is cheap
      // (benchmarks/RESULTS.md).
      [](const at::Tensor& h, const at::Tensor& w, const at::Tensor& b) { return at::mm(h, w.t()).add_(b); },
      [](at::Tensor& out, double slope) { at::leaky_relu_(out, slope); });
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor> transfer_mlp_backward_kernel(
    const at::Tensor& grad,
    const at::Tensor& x,
    at::TensorList hidden,
    at::TensorList weights,
    double negative_slope) {
  const c10::DeviceGuard guard(x.device());
  return run_layers_backward(
      grad, x, hidden, weights, negative_slope, [](at::Tensor& g, const at::Tensor& activation, double slope) {
        // self_is_result: the derivative is read from the activation's sign.
        at::leaky_relu_backward_outf(g, activation, slope, /*self_is_result=*/true, g);
      });
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  m.impl("transfer_mlp", &transfer_mlp_forward_kernel);
  m.impl("_transfer_mlp_backward", &transfer_mlp_backward_kernel);
}

} // namespace transfer_mlp
} // namespace maskx
