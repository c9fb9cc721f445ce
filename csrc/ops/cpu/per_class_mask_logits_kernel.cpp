// CPU kernels of maskx::per_class_mask_logits and its backward: parallel over RoIs, each
// thread taking the next RoI as it finishes one. Each RoI's K-channel dot with its
// class's weight row is vectorised over pixels, with the class bias, the class-agnostic
// logits and the optional sigmoid applied in the same pass.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "ops/cpu/mask_logits_cpu.h"
#include "ops/cpu/output_cache.h"
#include "ops/cpu/parallel_dynamic.h"
#include "ops/mask_logits_checks.h"

namespace maskx {
namespace mask_logits {
namespace {

template <typename scalar_t>
void forward_impl(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits,
    bool apply_sigmoid,
    at::Tensor& output) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t num_rois = features.size(0), num_channels = features.size(1);
  const int64_t pixels = features.size(2) * features.size(3);
  const scalar_t* f = features.data_ptr<scalar_t>();
  const scalar_t* w = class_weights.data_ptr<scalar_t>();
  const int64_t* cls = classes.data_ptr<int64_t>();
  const scalar_t* bias = class_bias.has_value() ? class_bias->data_ptr<scalar_t>() : nullptr;
  const scalar_t* agnostic = agnostic_logits.has_value() ? agnostic_logits->data_ptr<scalar_t>() : nullptr;
  scalar_t* out = output.data_ptr<scalar_t>();
  constexpr int64_t kStep = Vec<acc_t>::size();
  cpu::parallel_for_dynamic<RoIScratch<acc_t>>(num_rois, [&](int64_t r, RoIScratch<acc_t>& s) {
    const int64_t c = cls[r];
    roi_logits(
        f + r * num_channels * pixels,
        w + c * num_channels,
        num_channels,
        pixels,
        bias ? static_cast<acc_t>(bias[c]) : acc_t(0),
        agnostic ? agnostic + r * pixels : nullptr,
        s);
    acc_t* x = s.logits.data();
    if (apply_sigmoid) {
      for (int64_t p = 0; p < pixels; p += kStep) {
        const int64_t n = std::min(kStep, pixels - p);
        vec_sigmoid(Vec<acc_t>::loadu(x + p, n)).store(x + p, n);
      }
    }
    store_row<scalar_t>(x, pixels, out + r * pixels);
  });
}

at::Tensor per_class_mask_logits_forward_kernel(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits,
    bool sigmoid) {
  const char* op = "per_class_mask_logits";
  check_logits_args(op, features, class_weights, classes, class_bias, agnostic_logits);
  const at::Tensor cls = classes.contiguous();
  check_class_values(cls, class_weights.size(0), op);
  at::Tensor output = at::empty({features.size(0), features.size(2), features.size(3)}, features.options());
  if (output.numel() == 0)
    return output;
  const at::Tensor f = features.contiguous(), w = class_weights.contiguous();
  const std::optional<at::Tensor> bias =
      class_bias.has_value() ? std::optional<at::Tensor>(class_bias->contiguous()) : std::nullopt;
  const std::optional<at::Tensor> agnostic =
      agnostic_logits.has_value() ? std::optional<at::Tensor>(agnostic_logits->contiguous()) : std::nullopt;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "per_class_mask_logits", [&] {
    forward_impl<scalar_t>(f, w, cls, bias, agnostic, sigmoid, output);
  });
  return output;
}

template <typename scalar_t>
void backward_impl(
    const at::Tensor& grad,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    at::Tensor& grad_features,
    at::Tensor& grad_weights,
    at::Tensor& grad_bias) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t num_rois = features.size(0), num_channels = features.size(1);
  const int64_t pixels = features.size(2) * features.size(3);
  const scalar_t* g = grad.data_ptr<scalar_t>();
  const scalar_t* f = features.data_ptr<scalar_t>();
  const scalar_t* w = class_weights.data_ptr<scalar_t>();
  const int64_t* cls = classes.data_ptr<int64_t>();
  scalar_t* gf = grad_features.data_ptr<scalar_t>();
  // Per-RoI weight gradients (K values) followed by the bias gradient: [R, K + 1].
  std::vector<acc_t> partial(num_rois * (num_channels + 1));
  cpu::parallel_for_dynamic<RoIScratch<acc_t>>(num_rois, [&](int64_t r, RoIScratch<acc_t>& s) {
    acc_t* row = partial.data() + r * (num_channels + 1);
    const acc_t* gr = acc_row(g + r * pixels, pixels, s.grad);
    row[num_channels] = roi_backward(
        f + r * num_channels * pixels,
        w + cls[r] * num_channels,
        gr,
        num_channels,
        pixels,
        gf + r * num_channels * pixels,
        row,
        s);
  });
  class_gradients<scalar_t>(partial, cls, num_rois, num_channels, grad_weights, grad_bias);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> per_class_mask_logits_backward_kernel(
    const at::Tensor& grad,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes) {
  const char* op = "per_class_mask_logits_backward";
  check_logits_args(op, features, class_weights, classes, std::nullopt, std::nullopt);
  check_grad(op, grad, features);
  const at::Tensor cls = classes.contiguous();
  check_class_values(cls, class_weights.size(0), op);
  at::Tensor grad_features = cpu::empty_output(features.sizes(), features.options());
  at::Tensor grad_weights = at::empty_like(class_weights, at::MemoryFormat::Contiguous);
  at::Tensor grad_bias = at::empty({class_weights.size(0)}, class_weights.options());
  const at::Tensor g = grad.contiguous(), f = features.contiguous(), w = class_weights.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "per_class_mask_logits_backward", [&] {
    backward_impl<scalar_t>(g, f, w, cls, grad_features, grad_weights, grad_bias);
  });
  return {grad_features, grad_weights, grad_bias};
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  m.impl("per_class_mask_logits", &per_class_mask_logits_forward_kernel);
  m.impl("_per_class_mask_logits_backward", &per_class_mask_logits_backward_kernel);
}

} // namespace mask_logits
} // namespace maskx
