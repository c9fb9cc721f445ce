// CUDA kernels of maskx::per_class_mask_logits and its backward. Forward: a block takes
// kTilePixels pixels of one RoI; kSlices groups of threads each run the dot of a slice of
// the K channels with the class's row (coalesced over pixels, many loads in flight, since
// the op is bound by reading the features), and the slices' sums are added in a fixed
// order with the bias, the agnostic logits and the optional sigmoid. Class indices are
// range-checked by the Python wrapper. Backward: see mask_logits_cuda.cuh.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/cuda/mask_logits_cuda.cuh"
#include "ops/mask_logits_checks.h"
#include "ops/mask_logits_common.h"

namespace maskx {
namespace mask_logits {
namespace {

constexpr int kSlices = 4;
constexpr int kTilePixels = kThreads / kSlices;

template <typename scalar_t, typename acc_t>
__global__ void logits_kernel(
    const scalar_t* __restrict__ f,
    const scalar_t* __restrict__ w,
    const int64_t* __restrict__ classes,
    const scalar_t* __restrict__ bias,
    const scalar_t* __restrict__ agnostic,
    int64_t num_channels,
    int64_t pixels,
    bool apply_sigmoid,
    scalar_t* __restrict__ out) {
  __shared__ acc_t sums[kSlices][kTilePixels];
  const int64_t r = blockIdx.x;
  const int lane = threadIdx.x % kTilePixels, slice = threadIdx.x / kTilePixels;
  const int64_t per_slice = (num_channels + kSlices - 1) / kSlices;
  const int64_t k0 = slice * per_slice;
  const int64_t k1 = k0 + per_slice < num_channels ? k0 + per_slice : num_channels;
  const int64_t c = classes[r];
  // Tiles beyond the grid's y extent (over 65535 tiles) are taken in turn by the block.
  for (int64_t tile = blockIdx.y; tile * kTilePixels < pixels; tile += gridDim.y) {
    const int64_t p = tile * kTilePixels + lane;
    acc_t partial = acc_t(0);
    if (p < pixels && k0 < k1) {
      partial =
          channel_dot<acc_t>(f + (r * num_channels + k0) * pixels + p, pixels, w + c * num_channels + k0, k1 - k0);
    }
    sums[slice][lane] = partial;
    __syncthreads();
    if (slice == 0 && p < pixels) {
      acc_t x = sums[0][lane];
#pragma unroll
      for (int s = 1; s < kSlices; ++s)
        x += sums[s][lane];
      if (bias != nullptr)
        x += static_cast<acc_t>(bias[c]);
      if (agnostic != nullptr)
        x += static_cast<acc_t>(agnostic[r * pixels + p]);
      if (apply_sigmoid)
        x = sigmoid(x);
      out[r * pixels + p] = static_cast<scalar_t>(x);
    }
    __syncthreads();
  }
}

at::Tensor per_class_mask_logits_forward_kernel(
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes,
    const std::optional<at::Tensor>& class_bias,
    const std::optional<at::Tensor>& agnostic_logits,
    bool sigmoid) {
  check_logits_args("per_class_mask_logits", features, class_weights, classes, class_bias, agnostic_logits);
  const c10::cuda::CUDAGuard guard(features.device());
  const int64_t num_rois = features.size(0), num_channels = features.size(1);
  const int64_t pixels = features.size(2) * features.size(3);
  at::Tensor output = at::empty({num_rois, features.size(2), features.size(3)}, features.options());
  if (output.numel() == 0)
    return output;
  const at::Tensor f = features.contiguous(), w = class_weights.contiguous(), cls = classes.contiguous();
  const at::Tensor bias = class_bias.has_value() ? class_bias->contiguous() : at::Tensor();
  const at::Tensor agnostic = agnostic_logits.has_value() ? agnostic_logits->contiguous() : at::Tensor();
  const dim3 grid(num_rois, std::min<int64_t>(blocks_for(pixels, kTilePixels), 65535));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "per_class_mask_logits", [&] {
    logits_kernel<scalar_t, at::opmath_type<scalar_t>><<<grid, kThreads, 0, stream>>>(
        f.data_ptr<scalar_t>(),
        w.data_ptr<scalar_t>(),
        cls.data_ptr<int64_t>(),
        bias.defined() ? bias.data_ptr<scalar_t>() : nullptr,
        agnostic.defined() ? agnostic.data_ptr<scalar_t>() : nullptr,
        num_channels,
        pixels,
        sigmoid,
        output.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> per_class_mask_logits_backward_kernel(
    const at::Tensor& grad,
    const at::Tensor& features,
    const at::Tensor& class_weights,
    const at::Tensor& classes) {
  const char* op = "per_class_mask_logits_backward";
  check_logits_args(op, features, class_weights, classes, std::nullopt, std::nullopt);
  check_grad(op, grad, features);
  const c10::cuda::CUDAGuard guard(features.device());
  return logits_backward(grad.contiguous(), features.contiguous(), class_weights.contiguous(), classes.contiguous());
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  m.impl("per_class_mask_logits", &per_class_mask_logits_forward_kernel);
  m.impl("_per_class_mask_logits_backward", &per_class_mask_logits_backward_kernel);
}

} // namespace mask_logits
} // namespace maskx
