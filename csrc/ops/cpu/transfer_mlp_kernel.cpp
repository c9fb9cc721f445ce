// CPU kernels of maskx::transfer_mlp (Mask^X R-CNN's weight transfer function) and its
// backward. Each layer is one matrix product whose output starts from the bias (addmm,
// beta = 1: the bias costs no pass of its own), followed on hidden layers by a single
// vectorised LeakyReLU pass, parallel over class rows. The forward pass returns the hidden activations for the
// backward pass, which fuses the LeakyReLU's derivative (read from their sign: the
// slope is non-negative) into the pass after each matrix product. Every reduction has
// a fixed order: results are deterministic.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

namespace maskx {
namespace transfer_mlp {
namespace {

template <typename T>
using Vec = at::vec::Vectorized<T>;

void check_args(const at::Tensor& x, at::TensorList weights, at::TensorList biases, double slope, const char* op) {
  TORCH_CHECK_VALUE(slope >= 0, op, ": negative_slope must be non-negative, got ", slope);
  TORCH_CHECK_VALUE(x.dim() == 2, op, ": x must be a 2-d [C, D] tensor, got shape ", x.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(x.scalar_type()), op,
                    ": x must be a floating-point tensor (float64, float32, float16 or bfloat16), got ",
                    x.scalar_type());
  TORCH_CHECK_VALUE(!weights.empty() && weights.size() <= 3, op, ": expects 1 to 3 layers, got ", weights.size(),
                    " weights");
  TORCH_CHECK_VALUE(biases.size() == weights.size(), op, ": got ", weights.size(), " weights but ", biases.size(),
                    " biases");
  int64_t width = x.size(1);
  for (size_t i = 0; i < weights.size(); ++i) {
    TORCH_CHECK_VALUE(weights[i].dim() == 2 && weights[i].size(1) == width, op, ": weights[", i,
                      "] must be a [D_out, ", width, "] tensor to chain, got shape ", weights[i].sizes());
    width = weights[i].size(0);
    TORCH_CHECK_VALUE(biases[i].dim() == 1 && biases[i].size(0) == width, op, ": biases[", i, "] must be a [", width,
                      "] tensor, got shape ", biases[i].sizes());
    for (const at::Tensor* t : {&weights[i], &biases[i]}) {
      TORCH_CHECK_VALUE(t->scalar_type() == x.scalar_type() && t->device() == x.device(), op,
                        ": every weight and bias must share x's dtype and device (", x.scalar_type(), ", ",
                        x.device(), "), layer ", i, " has ", t->scalar_type(), " on ", t->device());
    }
  }
}

// Rows per task of a pass over a [rows, cols] matrix: at least 64K elements, so that the
// small outputs of COCO-sized problems run inline instead of waking the thread pool.
int64_t grain(int64_t cols) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)); }

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

// Runs the layers: returns the output and the hidden layers' activations.
std::tuple<at::Tensor, std::vector<at::Tensor>> transfer_mlp_forward_kernel(const at::Tensor& x,
                                                                             at::TensorList weights,
                                                                             at::TensorList biases,
                                                                             double negative_slope) {
  check_args(x, weights, biases, negative_slope, "transfer_mlp");
  std::vector<at::Tensor> hidden;
  at::Tensor h = x.contiguous();
  const size_t num_layers = weights.size();
  for (size_t i = 0; i < num_layers; ++i) {
    // The bias is the product's initial value (beta = 1), written by the GEMM itself.
    at::Tensor out = at::addmm(biases[i], h, weights[i].t());
    if (i + 1 < num_layers) {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "transfer_mlp_leaky_relu",
                                      [&] { leaky_relu_<scalar_t>(out, negative_slope); });
      hidden.push_back(out);
    }
    h = out;
  }
  return {h, hidden};
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>, at::Tensor> transfer_mlp_backward_kernel(
    const at::Tensor& grad, const at::Tensor& x, at::TensorList hidden, at::TensorList weights,
    double negative_slope) {
  const char* op = "transfer_mlp_backward";
  TORCH_CHECK_VALUE(!weights.empty() && weights.size() <= 3 && hidden.size() + 1 == weights.size(), op,
                    ": expects 1 to 3 weights and one hidden activation fewer, got ", weights.size(), " and ",
                    hidden.size());
  const int64_t out_width = weights.back().size(0);
  TORCH_CHECK_VALUE(grad.dim() == 2 && grad.size(0) == x.size(0) && grad.size(1) == out_width, op,
                    ": grad must be a [", x.size(0), ", ", out_width, "] tensor, got shape ", grad.sizes());
  TORCH_CHECK_VALUE(grad.scalar_type() == x.scalar_type() && grad.device() == x.device(), op,
                    ": grad must share x's dtype and device");
  for (size_t i = 0; i < hidden.size(); ++i) {
    TORCH_CHECK_VALUE(hidden[i].dim() == 2 && hidden[i].size(0) == x.size(0) && hidden[i].size(1) == weights[i].size(0),
                      op, ": hidden[", i, "] must be a [", x.size(0), ", ", weights[i].size(0), "] tensor, got shape ",
                      hidden[i].sizes());
  }
  const size_t num_layers = weights.size();
  std::vector<at::Tensor> inputs{x.contiguous()};
  for (const at::Tensor& h : hidden) inputs.push_back(h.contiguous());
  std::vector<at::Tensor> grad_weights(num_layers), grad_biases(num_layers);
  at::Tensor g = grad.contiguous();
  for (size_t i = num_layers; i-- > 0;) {
    grad_weights[i] = at::mm(g.t(), inputs[i]);
    grad_biases[i] = g.sum(0);
    if (i == 0) break;
    at::Tensor next = at::mm(g, weights[i]);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, next.scalar_type(), "transfer_mlp_activation_grad",
                                    [&] { activation_grad<scalar_t>(next, inputs[i], negative_slope); });
    g = next;
  }
  // With one layer g is still `grad` (or a view of it): outputs must not alias inputs.
  return {grad_weights, grad_biases, num_layers == 1 ? g.clone() : g};
}

}  // namespace

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  m.impl("transfer_mlp", &transfer_mlp_forward_kernel);
  m.impl("_transfer_mlp_backward", &transfer_mlp_backward_kernel);
}

}  // namespace transfer_mlp
}  // namespace maskx
