// CUDA kernels of maskx::per_class_mask_logits and its backward. Forward: one thread per
// (RoI, pixel) runs the K-channel dot with its class's row, coalesced over pixels, and
// adds bias, agnostic logits and the optional sigmoid. Class indices are range-checked
// by the Python wrapper. Backward: see mask_logits_cuda.cuh.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/cuda/mask_logits_cuda.cuh"
#include "ops/mask_logits_checks.h"
#include "ops/mask_logits_common.h"

namespace maskx {
namespace mask_logits {
namespace {

template <typename scalar_t, typename acc_t>
__global__ void logits_kernel(const scalar_t* f, const scalar_t* w, const int64_t* classes, const scalar_t* bias,
                              const scalar_t* agnostic, int64_t num_channels, int64_t pixels, bool apply_sigmoid,
                              scalar_t* out) {
  const int64_t r = blockIdx.x;
  const int64_t p = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (p >= pixels) return;
  acc_t x = logit_at<acc_t>(f, w, classes, bias, agnostic, r, p, num_channels, pixels);
  if (apply_sigmoid) x = sigmoid(x);
  out[r * pixels + p] = static_cast<scalar_t>(x);
}

at::Tensor per_class_mask_logits_forward_kernel(const at::Tensor& features, const at::Tensor& class_weights,
                                                const at::Tensor& classes,
                                                const std::optional<at::Tensor>& class_bias,
                                                const std::optional<at::Tensor>& agnostic_logits, bool sigmoid) {
  check_logits_args("per_class_mask_logits", features, class_weights, classes, class_bias, agnostic_logits);
  const c10::cuda::CUDAGuard guard(features.device());
  const int64_t num_rois = features.size(0), num_channels = features.size(1);
  const int64_t pixels = features.size(2) * features.size(3);
  at::Tensor output = at::empty({num_rois, features.size(2), features.size(3)}, features.options());
  if (output.numel() == 0) return output;
  const at::Tensor f = features.contiguous(), w = class_weights.contiguous(), cls = classes.contiguous();
  const at::Tensor bias = class_bias.has_value() ? class_bias->contiguous() : at::Tensor();
  const at::Tensor agnostic = agnostic_logits.has_value() ? agnostic_logits->contiguous() : at::Tensor();
  const dim3 grid(num_rois, blocks_for(pixels, kThreads));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "per_class_mask_logits", [&] {
    logits_kernel<scalar_t, at::opmath_type<scalar_t>><<<grid, kThreads, 0, stream>>>(
        f.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), cls.data_ptr<int64_t>(),
        bias.defined() ? bias.data_ptr<scalar_t>() : nullptr,
        agnostic.defined() ? agnostic.data_ptr<scalar_t>() : nullptr, num_channels, pixels, sigmoid,
        output.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> per_class_mask_logits_backward_kernel(
    const at::Tensor& grad, const at::Tensor& features, const at::Tensor& class_weights, const at::Tensor& classes) {
  const char* op = "per_class_mask_logits_backward";
  check_logits_args(op, features, class_weights, classes, std::nullopt, std::nullopt);
  check_grad(op, grad, features);
  const c10::cuda::CUDAGuard guard(features.device());
  return logits_backward(grad.contiguous(), features.contiguous(), class_weights.contiguous(), classes.contiguous());
}

}  // namespace

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  m.impl("per_class_mask_logits", &per_class_mask_logits_forward_kernel);
  m.impl("_per_class_mask_logits_backward", &per_class_mask_logits_backward_kernel);
}

}  // namespace mask_logits
}  // namespace maskx
