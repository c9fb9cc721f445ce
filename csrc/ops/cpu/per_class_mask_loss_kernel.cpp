// CPU kernels of maskx::per_class_mask_loss and its backward. Only valid RoIs are
// visited: each one's logits are formed in an L1-resident buffer (mask_logits_cpu.h)
// and reduced to its binary cross-entropy sum at once; the backward pass recomputes
// them to get (sigmoid(x) - t) / count and runs the logits' backward on it. Per-RoI sums
// are added in RoI order, so results do not depend on the thread count.
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

// Contiguous copies of the optional inputs, or nothing.
std::optional<at::Tensor> contiguous(const std::optional<at::Tensor>& t) {
  return t.has_value() ? std::optional<at::Tensor>(t->contiguous()) : std::nullopt;
}

template <typename scalar_t>
void check_target_values(const at::Tensor& targets) {
  const scalar_t* t = targets.data_ptr<scalar_t>();
  for (int64_t i = 0; i < targets.numel(); ++i) {
    const double v = static_cast<double>(t[i]);
    TORCH_CHECK_VALUE(
        v >= 0.0 && v <= 1.0, "per_class_mask_loss: targets must lie in [0, 1], found ", v, " at flat index ", i);
  }
}

// The inputs of both passes, validated and contiguous.
struct LossInputs {
  at::Tensor features, class_weights, classes, targets;
  std::optional<at::Tensor> class_bias, agnostic_logits;
  std::vector<uint8_t> valid; // one flag per RoI
  int64_t num_valid = 0;
};

LossInputs prepare(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const at::Tensor& targets,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits,
    const std::optional<at::Tensor>& valid,
    const char* op) {
  check_logits_args(op, features, class_weights, classes, class_bias, agnostic_logits);
  check_loss_args(features, targets, valid);
  LossInputs in{
      features.contiguous(),
      class_weights.contiguous(),
      classes.contiguous(),
      targets.contiguous(),
      contiguous(class_bias),
      contiguous(agnostic_logits)};
  check_class_values(in.classes, class_weights.size(0), op);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "per_class_mask_loss_targets", [&] {
    check_target_values<scalar_t>(in.targets);
  });
  const int64_t num_rois = features.size(0);
  in.valid.assign(num_rois, 1);
  if (valid.has_value()) {
    const at::Tensor v = valid->contiguous();
    const bool* flags = v.data_ptr<bool>();
    for (int64_t r = 0; r < num_rois; ++r)
      in.valid[r] = flags[r] ? 1 : 0;
  }
  for (int64_t r = 0; r < num_rois; ++r)
    in.num_valid += in.valid[r];
  return in;
}

// Logits of RoI r into s.logits.
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
void valid_roi_logits(const LossInputs& in, int64_t r, RoIScratch<acc_t>& s) {
  const int64_t num_channels = in.features.size(1);
  const int64_t pixels = in.features.size(2) * in.features.size(3);
  const int64_t c = in.classes.data_ptr<int64_t>()[r];
  const scalar_t* bias = in.class_bias.has_value() ? in.class_bias->data_ptr<scalar_t>() : nullptr;
  const scalar_t* agnostic = in.agnostic_logits.has_value() ? in.agnostic_logits->data_ptr<scalar_t>() : nullptr;
  roi_logits(
      in.features.data_ptr<scalar_t>() + r * num_channels * pixels,
      in.class_weights.data_ptr<scalar_t>() + c * num_channels,
      num_channels,
      pixels,
      bias ? static_cast<acc_t>(bias[c]) : acc_t(0),
      agnostic ? agnostic + r * pixels : nullptr,
      s);
}

template <typename scalar_t>
at::Tensor forward_impl(const LossInputs& in) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t kStep = Vec<acc_t>::size();
  const int64_t num_rois = in.features.size(0);
  const int64_t pixels = in.features.size(2) * in.features.size(3);
  const scalar_t* targets = in.targets.data_ptr<scalar_t>();
  std::vector<acc_t> roi_loss(num_rois, acc_t(0));
  const Vec<acc_t> zero(acc_t(0));
  cpu::parallel_for_dynamic<RoIScratch<acc_t>>(num_rois, [&](int64_t r, RoIScratch<acc_t>& s) {
    if (!in.valid[r])
      return;
    valid_roi_logits<scalar_t>(in, r, s);
    const acc_t* x = s.logits.data();
    const acc_t* t = acc_row(targets + r * pixels, pixels, s.rows[0]);
    Vec<acc_t> total = zero;
    for (int64_t p = 0; p < pixels; p += kStep) {
      const int64_t n = std::min(kStep, pixels - p);
      const Vec<acc_t> xv = Vec<acc_t>::loadu(x + p, n), tv = Vec<acc_t>::loadu(t + p, n);
      // max(x, 0) - x t + log1p(exp(-|x|)); lanes past n load zeros and add log(2),
      // so they are masked out.
      const Vec<acc_t> bce = at::vec::maximum(xv, zero) - xv * tv + xv.abs().neg().exp().log1p();
      total = total + Vec<acc_t>::set(zero, bce, n);
    }
    roi_loss[r] = vec_sum(total);
  });
  acc_t sum = acc_t(0);
  for (int64_t r = 0; r < num_rois; ++r)
    sum += roi_loss[r];
  const int64_t count = in.num_valid * pixels;
  return at::scalar_tensor(count > 0 ? sum / static_cast<acc_t>(count) : acc_t(0), in.features.options());
}

at::Tensor per_class_mask_loss_forward_kernel(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const at::Tensor& targets,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits,
    const std::optional<at::Tensor>& valid) {
  const LossInputs in =
      prepare(features, class_weights, classes, targets, class_bias, agnostic_logits, valid, "per_class_mask_loss");
  at::Tensor loss;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "per_class_mask_loss", [&] {
    loss = forward_impl<scalar_t>(in);
  });
  return loss;
}

template <typename scalar_t>
void backward_impl(
    const LossInputs& in,
    double grad_loss,
    at::Tensor& grad_features,
    at::Tensor& grad_weights,
    at::Tensor& grad_bias,
    at::Tensor& grad_agnostic) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t kStep = Vec<acc_t>::size();
  const int64_t num_rois = in.features.size(0), num_channels = in.features.size(1);
  const int64_t pixels = in.features.size(2) * in.features.size(3);
  const int64_t count = in.num_valid * pixels;
  const Vec<acc_t> scale(count > 0 ? static_cast<acc_t>(grad_loss / static_cast<double>(count)) : acc_t(0));
  const scalar_t* f = in.features.data_ptr<scalar_t>();
  const scalar_t* w = in.class_weights.data_ptr<scalar_t>();
  const scalar_t* targets = in.targets.data_ptr<scalar_t>();
  const int64_t* cls = in.classes.data_ptr<int64_t>();
  scalar_t* gf = grad_features.data_ptr<scalar_t>();
  scalar_t* ga = grad_agnostic.data_ptr<scalar_t>();
  // Per-RoI weight gradients (K values) followed by the bias gradient: [R, K + 1].
  std::vector<acc_t> partial(num_rois * (num_channels + 1), acc_t(0));
  cpu::parallel_for_dynamic<RoIScratch<acc_t>>(num_rois, [&](int64_t r, RoIScratch<acc_t>& s) {
    if (!in.valid[r]) {
      std::fill(gf + r * num_channels * pixels, gf + (r + 1) * num_channels * pixels, scalar_t(0));
      std::fill(ga + r * pixels, ga + (r + 1) * pixels, scalar_t(0));
      return;
    }
    valid_roi_logits<scalar_t>(in, r, s);
    // The logits' gradient, (sigmoid(x) - t) * grad / count, overwrites the logits.
    acc_t* x = s.logits.data();
    const acc_t* t = acc_row(targets + r * pixels, pixels, s.rows[0]);
    for (int64_t p = 0; p < pixels; p += kStep) {
      const int64_t n = std::min(kStep, pixels - p);
      ((vec_sigmoid(Vec<acc_t>::loadu(x + p, n)) - Vec<acc_t>::loadu(t + p, n)) * scale).store(x + p, n);
    }
    store_row<scalar_t>(x, pixels, ga + r * pixels);
    acc_t* row = partial.data() + r * (num_channels + 1);
    row[num_channels] = roi_backward(
        f + r * num_channels * pixels,
        w + cls[r] * num_channels,
        x,
        num_channels,
        pixels,
        gf + r * num_channels * pixels,
        row,
        s);
  });
  class_gradients<scalar_t>(partial, cls, num_rois, num_channels, grad_weights, grad_bias);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> per_class_mask_loss_backward_kernel(
    const at::Tensor& grad,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const at::Tensor& targets,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits,
    const std::optional<at::Tensor>& valid) {
  const char* op = "per_class_mask_loss_backward";
  check_loss_grad(op, grad);
  const LossInputs in = prepare(features, class_weights, classes, targets, class_bias, agnostic_logits, valid, op);
  at::Tensor grad_features = cpu::empty_output(in.features.sizes(), in.features.options());
  at::Tensor grad_weights = at::empty_like(in.class_weights);
  at::Tensor grad_bias = at::empty({class_weights.size(0)}, class_weights.options());
  at::Tensor grad_agnostic = at::empty_like(in.targets);
  const double g = grad.item<double>();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, features.scalar_type(), "per_class_mask_loss_backward", [&] {
        backward_impl<scalar_t>(in, g, grad_features, grad_weights, grad_bias, grad_agnostic);
      });
  return {grad_features, grad_weights, grad_bias, grad_agnostic};
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  m.impl("per_class_mask_loss", &per_class_mask_loss_forward_kernel);
  m.impl("_per_class_mask_loss_backward", &per_class_mask_loss_backward_kernel);
}

} // namespace mask_logits
} // namespace maskx
