// CPU kernels of maskx::transfer_mlp (Mask^X R-CNN's weight transfer function) and its
// backward: the layer loop of ops/transfer_mlp_layers.cpp with one matrix product per
// layer that starts from the bias (addmm: the bias costs no pass of its own), a single
// vectorised LeakyReLU pass per hidden layer and, in the backward, the LeakyReLU's
// derivative fused into one pass after each product; both parallel over class rows.
// Every reduction has a fixed order: results are deterministic.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "ops/transfer_mlp_layers.h"

namespace maskx {
namespace transfer_mlp {
namespace {

template <typename T>
using Vec = at::vec::Vectorized<T>;

// Rows per task of a pass over a [rows, cols] matrix: at least 64K elements, so that the
// small outputs of COCO-sized problems run inline instead of waking the thread pool.
int64_t grain(int64_t cols) {
  return std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1));
}

// out = LeakyReLU(out), in place, in one vectorised pass.
template <typename scalar_t>
void leaky_relu_(at::Tensor& out, double slope) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t rows = out.size(0), cols = out.size(1);
  scalar_t* o = out.data_ptr<scalar_t>();
  const acc_t s = static_cast<acc_t>(slope);
  at::parallel_for(0, rows, grain(cols), [&](int64_t lo, int64_t hi) {
    int64_t j = lo * cols;
    const int64_t end = hi * cols;
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      constexpr int64_t kStep = Vec<acc_t>::size();
      const Vec<acc_t> zero(acc_t(0)), sv(s);
      for (; j + kStep <= end; j += kStep) {
        const Vec<acc_t> v = Vec<acc_t>::loadu(o + j);
        Vec<acc_t>::blendv(v * sv, v, v > zero).store(o + j);
      }
    }
    for (; j < end; ++j) {
      const acc_t v = static_cast<acc_t>(o[j]);
      o[j] = static_cast<scalar_t>(v > acc_t(0) ? v : v * s);
    }
  });
}

// grad *= LeakyReLU'(z), in place, read from the activation h = LeakyReLU(z): with a
// non-negative slope, h > 0 exactly where z > 0.
template <typename scalar_t>
void activation_grad(at::Tensor& grad, const at::Tensor& activation, double slope) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t rows = grad.size(0), cols = grad.size(1);
  scalar_t* g = grad.data_ptr<scalar_t>();
  const scalar_t* z = activation.data_ptr<scalar_t>();
  const acc_t s = static_cast<acc_t>(slope);
  at::parallel_for(0, rows, grain(cols), [&](int64_t lo, int64_t hi) {
    int64_t j = lo * cols;
    const int64_t end = hi * cols;
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      constexpr int64_t kStep = Vec<acc_t>::size();
      const Vec<acc_t> zero(acc_t(0)), sv(s);
      for (; j + kStep <= end; j += kStep) {
        const Vec<acc_t> v = Vec<acc_t>::loadu(g + j);
        Vec<acc_t>::blendv(v * sv, v, Vec<acc_t>::loadu(z + j) > zero).store(g + j);
      }
    }
    for (; j < end; ++j) {
      const acc_t v = static_cast<acc_t>(g[j]);
      g[j] = static_cast<scalar_t>(static_cast<acc_t>(z[j]) > acc_t(0) ? v : v * s);
    }
  });
}

std::tuple<at::Tensor, std::vector<at::Tensor>> transfer_mlp_forward_kernel(
    const at::Tensor& x,
    at::TensorList weights,
    at::TensorList biases,
    double negative_slope) {
  return run_layers(
      x,
      weights,
      biases,
      negative_slope,
      // The bias is the product's initial value (beta = 1), written by the GEMM itself.
      [](const at::Tensor& h, const at::Tensor& w, const at::Tensor& b) { return at::addmm(b, h, w.t()); },
      [](at::Tensor& out, double slope) {
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "transfer_mlp_leaky_relu", [&] {
          leaky_relu_<scalar_t>(out, slope);
        });
      });
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor> transfer_mlp_backward_kernel(
    const at::Tensor& grad,
    const at::Tensor& x,
    at::TensorList hidden,
    at::TensorList weights,
    double negative_slope) {
  return run_layers_backward(
      grad, x, hidden, weights, negative_slope, [](at::Tensor& g, const at::Tensor& activation, double slope) {
        AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "transfer_mlp_activation_grad", [&] {
          activation_grad<scalar_t>(g, activation, slope);
        });
      });
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  m.impl("transfer_mlp", &transfer_mlp_forward_kernel);
  m.impl("_transfer_mlp_backward", &transfer_mlp_backward_kernel);
}

} // namespace transfer_mlp
} // namespace maskx
