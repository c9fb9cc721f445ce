#pragma once
// CUDA building blocks shared by the per_class_mask_logits and per_class_mask_loss
// kernels: one RoI's logit at one pixel, and the logits' backward pass. The backward
// writes the features' gradient and per-RoI partial weight/bias gradients with one block
// per (RoI, group of channels), then sums the partials over the RoIs of each class in
// RoI order (classes sorted stably): deterministic, no atomics.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <tuple>

#include "ops/mask_logits_common.h"

namespace maskx {
namespace mask_logits {

constexpr int kThreads = 256;
constexpr int64_t kChannelsPerBlock = 8;

inline int64_t blocks_for(int64_t n, int64_t threads) {
  return (n + threads - 1) / threads;
}

// Sum over the block, in a fixed order; every thread gets the result.
template <typename acc_t>
__device__ acc_t block_sum(acc_t v, acc_t* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s)
      shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  const acc_t total = shared[0];
  __syncthreads();
  return total;
}

// RoI r's logit at pixel p; `bias` and `agnostic` may be null. Threads of a warp take
// consecutive pixels, so every channel's read is coalesced.
template <typename acc_t, typename scalar_t>
__device__ acc_t logit_at(
    const scalar_t* f,
    const scalar_t* w,
    const int64_t* classes,
    const scalar_t* bias,
    const scalar_t* agnostic,
    int64_t r,
    int64_t p,
    int64_t num_channels,
    int64_t pixels) {
  const int64_t c = classes[r];
  acc_t x = channel_dot<acc_t>(f + r * num_channels * pixels + p, pixels, w + c * num_channels, num_channels);
  if (bias != nullptr)
    x += static_cast<acc_t>(bias[c]);
  if (agnostic != nullptr)
    x += static_cast<acc_t>(agnostic[r * pixels + p]);
  return x;
}

// Grid (R, ceil(K / kChannelsPerBlock)). partial is [R, K + 1]: the K weight gradients
// of each RoI, then its bias gradient.
template <typename scalar_t, typename acc_t>
__global__ void roi_backward_kernel(
    const scalar_t* grad,
    const scalar_t* f,
    const scalar_t* w,
    const int64_t* classes,
    int64_t num_channels,
    int64_t pixels,
    scalar_t* grad_f,
    acc_t* partial) {
  __shared__ acc_t shared[kThreads];
  const int64_t r = blockIdx.x;
  const int64_t c = classes[r];
  const int64_t k0 = blockIdx.y * kChannelsPerBlock;
  const int64_t k1 = k0 + kChannelsPerBlock < num_channels ? k0 + kChannelsPerBlock : num_channels;
  const scalar_t* g = grad + r * pixels;
  for (int64_t k = k0; k < k1; ++k) {
    const acc_t wk = static_cast<acc_t>(w[c * num_channels + k]);
    const int64_t row = (r * num_channels + k) * pixels;
    acc_t dot = acc_t(0);
    for (int64_t p = threadIdx.x; p < pixels; p += blockDim.x) {
      const acc_t gp = static_cast<acc_t>(g[p]);
      grad_f[row + p] = static_cast<scalar_t>(wk * gp);
      dot += static_cast<acc_t>(f[row + p]) * gp;
    }
    dot = block_sum(dot, shared);
    if (threadIdx.x == 0)
      partial[r * (num_channels + 1) + k] = dot;
  }
  if (blockIdx.y == 0) {
    acc_t total = acc_t(0);
    for (int64_t p = threadIdx.x; p < pixels; p += blockDim.x)
      total += static_cast<acc_t>(g[p]);
    total = block_sum(total, shared);
    if (threadIdx.x == 0)
      partial[r * (num_channels + 1) + num_channels] = total;
  }
}

// out[c, n] = sum over i in [offsets[c], offsets[c + 1]) of partial[order[i], n].
template <typename acc_t>
__global__ void sum_by_class_kernel(
    const acc_t* partial,
    const int64_t* order,
    const int64_t* offsets,
    int64_t num_classes,
    int64_t width,
    acc_t* out) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= num_classes * width)
    return;
  const int64_t c = index / width, n = index % width;
  acc_t acc = acc_t(0);
  for (int64_t i = offsets[c]; i < offsets[c + 1]; ++i)
    acc += partial[order[i] * width + n];
  out[index] = acc;
}

// Gradients of the logits with respect to features, class weights and class bias, given
// the logits' gradient `grad` ([R, H, W]); all tensors contiguous, on the current device.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> logits_backward(
    const at::Tensor& grad,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes) {
  const int64_t num_rois = features.size(0), num_channels = features.size(1);
  const int64_t pixels = features.size(2) * features.size(3);
  const int64_t num_classes = class_weights.size(0);
  const auto acc_type = features.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor grad_features = at::empty_like(features);
  at::Tensor partial = at::zeros({num_rois, num_channels + 1}, features.options().dtype(acc_type));
  at::Tensor sums = at::zeros({num_classes, num_channels + 1}, partial.options());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, features.scalar_type(), "per_class_mask_logits_backward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        if (num_rois > 0) {
          const dim3 grid(num_rois, std::max<int64_t>(1, blocks_for(num_channels, kChannelsPerBlock)));
          roi_backward_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
              grad.data_ptr<scalar_t>(),
              features.data_ptr<scalar_t>(),
              class_weights.data_ptr<scalar_t>(),
              classes.data_ptr<int64_t>(),
              num_channels,
              pixels,
              grad_features.data_ptr<scalar_t>(),
              partial.data_ptr<acc_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
          const at::Tensor order = std::get<1>(at::sort(classes, /*stable=*/true, 0, false));
          const at::Tensor offsets =
              at::searchsorted(classes.index_select(0, order), at::arange(num_classes + 1, classes.options()));
          const int64_t total = num_classes * (num_channels + 1);
          sum_by_class_kernel<acc_t><<<blocks_for(total, kThreads), kThreads, 0, stream>>>(
              partial.data_ptr<acc_t>(),
              order.data_ptr<int64_t>(),
              offsets.data_ptr<int64_t>(),
              num_classes,
              num_channels + 1,
              sums.data_ptr<acc_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
      });
  at::Tensor grad_weights = sums.narrow(1, 0, num_channels).to(class_weights.scalar_type()).contiguous();
  at::Tensor grad_bias = sums.select(1, num_channels).to(class_weights.scalar_type()).contiguous();
  return {grad_features, grad_weights, grad_bias};
}

} // namespace mask_logits
} // namespace maskx
