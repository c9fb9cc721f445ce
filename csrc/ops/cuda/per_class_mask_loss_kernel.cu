// CUDA kernels of maskx::per_class_mask_loss and its backward. Forward: one block per
// (RoI, block of pixels); blocks of invalid RoIs return at once, the others form their
// logits (mask_logits_cuda.cuh) and reduce their binary cross-entropy to one partial
// sum, and the partials are summed in a fixed order. Backward: one thread per (RoI,
// pixel) recomputes the logit and writes (sigmoid(x) - t) * grad / count (zero for
// invalid RoIs), which goes through the logits' backward. Class indices and target
// values are checked by the Python wrapper.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/cuda/mask_logits_cuda.cuh"
#include "ops/mask_logits_checks.h"
#include "ops/mask_logits_common.h"

namespace maskx {
namespace mask_logits {
namespace {

struct LossArgs {
  at::Tensor features, class_weights, classes, targets, bias, agnostic, valid;
};

LossArgs prepare(
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
  return {
      features.contiguous(),
      class_weights.contiguous(),
      classes.contiguous(),
      targets.contiguous(),
      class_bias.has_value() ? class_bias->contiguous() : at::Tensor(),
      agnostic_logits.has_value() ? agnostic_logits->contiguous() : at::Tensor(),
      valid.has_value() ? valid->contiguous() : at::Tensor()};
}

template <typename scalar_t>
const scalar_t* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<scalar_t>() : nullptr;
}

// Pixels in the loss, valid RoIs x H x W, as a device tensor (no synchronisation).
at::Tensor pixel_count(const LossArgs& a) {
  const int64_t pixels = a.features.size(2) * a.features.size(3);
  const at::Tensor rois =
      a.valid.defined() ? a.valid.sum() : at::scalar_tensor(a.features.size(0), a.classes.options());
  return (rois * pixels).clamp_min(1);
}

template <typename scalar_t, typename acc_t>
__global__ void loss_kernel(
    const scalar_t* f,
    const scalar_t* w,
    const int64_t* classes,
    const scalar_t* bias,
    const scalar_t* agnostic,
    const scalar_t* targets,
    const bool* valid,
    int64_t num_channels,
    int64_t pixels,
    acc_t* partial) {
  __shared__ acc_t shared[kThreads];
  const int64_t r = blockIdx.x;
  // The whole block agrees on validity, so returning here skips block_sum for all.
  if (valid != nullptr && !valid[r])
    return;
  const int64_t p = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  acc_t loss = acc_t(0);
  if (p < pixels) {
    const acc_t x = logit_at<acc_t>(f, w, classes, bias, agnostic, r, p, num_channels, pixels);
    loss = bce_with_logits(x, static_cast<acc_t>(targets[r * pixels + p]));
  }
  loss = block_sum(loss, shared);
  if (threadIdx.x == 0)
    partial[r * gridDim.y + blockIdx.y] = loss;
}

template <typename scalar_t, typename acc_t>
__global__ void loss_grad_kernel(
    const scalar_t* f,
    const scalar_t* w,
    const int64_t* classes,
    const scalar_t* bias,
    const scalar_t* agnostic,
    const scalar_t* targets,
    const bool* valid,
    const acc_t* scale,
    int64_t num_channels,
    int64_t pixels,
    scalar_t* out) {
  const int64_t r = blockIdx.x;
  const int64_t p = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (p >= pixels)
    return;
  acc_t d = acc_t(0);
  if (valid == nullptr || valid[r]) {
    const acc_t x = logit_at<acc_t>(f, w, classes, bias, agnostic, r, p, num_channels, pixels);
    d = bce_with_logits_grad(x, static_cast<acc_t>(targets[r * pixels + p])) * scale[0];
  }
  out[r * pixels + p] = static_cast<scalar_t>(d);
}

at::Tensor per_class_mask_loss_forward_kernel(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const at::Tensor& targets,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits,
    const std::optional<at::Tensor>& valid) {
  const c10::cuda::CUDAGuard guard(features.device());
  const LossArgs a =
      prepare(features, class_weights, classes, targets, class_bias, agnostic_logits, valid, "per_class_mask_loss");
  const int64_t num_rois = features.size(0), num_channels = features.size(1);
  const int64_t pixels = features.size(2) * features.size(3);
  const auto acc_type = features.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t blocks = blocks_for(pixels, kThreads);
  at::Tensor partial = at::zeros({num_rois, blocks}, features.options().dtype(acc_type));
  if (partial.numel() > 0) {
    const dim3 grid(num_rois, blocks);
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(), "per_class_mask_loss", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      loss_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
          a.features.data_ptr<scalar_t>(),
          a.class_weights.data_ptr<scalar_t>(),
          a.classes.data_ptr<int64_t>(),
          ptr_or_null<scalar_t>(a.bias),
          ptr_or_null<scalar_t>(a.agnostic),
          a.targets.data_ptr<scalar_t>(),
          a.valid.defined() ? a.valid.data_ptr<bool>() : nullptr,
          num_channels,
          pixels,
          partial.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return (partial.sum() / pixel_count(a)).to(features.scalar_type());
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
  const c10::cuda::CUDAGuard guard(features.device());
  const LossArgs a = prepare(features, class_weights, classes, targets, class_bias, agnostic_logits, valid, op);
  const int64_t num_rois = features.size(0), num_channels = features.size(1);
  const int64_t pixels = features.size(2) * features.size(3);
  const auto acc_type = features.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor scale = (grad.reshape({}).to(acc_type) / pixel_count(a)).reshape({1});
  at::Tensor grad_logits = at::empty_like(a.targets);
  if (grad_logits.numel() > 0) {
    const dim3 grid(num_rois, blocks_for(pixels, kThreads));
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, features.scalar_type(), "per_class_mask_loss_backward", [&] {
          using acc_t = at::opmath_type<scalar_t>;
          loss_grad_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
              a.features.data_ptr<scalar_t>(),
              a.class_weights.data_ptr<scalar_t>(),
              a.classes.data_ptr<int64_t>(),
              ptr_or_null<scalar_t>(a.bias),
              ptr_or_null<scalar_t>(a.agnostic),
              a.targets.data_ptr<scalar_t>(),
              a.valid.defined() ? a.valid.data_ptr<bool>() : nullptr,
              scale.data_ptr<acc_t>(),
              num_channels,
              pixels,
              grad_logits.data_ptr<scalar_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  auto [grad_features, grad_weights, grad_bias] = logits_backward(grad_logits, a.features, a.class_weights, a.classes);
  return {grad_features, grad_weights, grad_bias, grad_logits};
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  m.impl("per_class_mask_loss", &per_class_mask_loss_forward_kernel);
  m.impl("_per_class_mask_loss_backward", &per_class_mask_loss_backward_kernel);
}

} // namespace mask_logits
} // namespace maskx
