#pragma once
// "mask_logits" (these files, cpu/mask_logits_cpu.h, cuda/mask_logits_cuda.cuh,
// mask_logits_checks.h and the namespace maskx::mask_logits) names what the two ops
// per_class_mask_logits and per_class_mask_loss share: the loss fuses the logits.
//
// Per-element math of the per-class mask logits and loss. A RoI's logit at pixel p is
// the 1x1 conv of its features with its class's weight row: sum_k w[k] * f[k, p]
// (+ class bias + class-agnostic logit). The CUDA kernels call these per pixel; the CPU
// kernels (cpu/mask_logits_cpu.h) evaluate the same formulas on at::vec vectors.
#include <cmath>
#include <cstdint>

#include "ops/host_device.h"

namespace maskx {
namespace mask_logits {

// sum_k w[k] * f[k * stride]: one pixel's dot over the K channels of a [K, H*W] block.
// Unrolled so that a GPU thread keeps several feature loads in flight.
template <typename acc_t, typename scalar_t>
MASKX_HOST_DEVICE acc_t channel_dot(const scalar_t* f, int64_t stride, const scalar_t* w, int64_t num_channels) {
  acc_t acc = acc_t(0);
#pragma unroll 8
  for (int64_t k = 0; k < num_channels; ++k) {
    acc += static_cast<acc_t>(w[k]) * static_cast<acc_t>(f[k * stride]);
  }
  return acc;
}

template <typename acc_t>
MASKX_HOST_DEVICE acc_t sigmoid(acc_t x) {
  return acc_t(1) / (acc_t(1) + exp(-x));
}

// Binary cross-entropy of logit x against target t in [0, 1], written so that it
// never overflows: max(x, 0) - x * t + log(1 + exp(-|x|)).
template <typename acc_t>
MASKX_HOST_DEVICE acc_t bce_with_logits(acc_t x, acc_t t) {
  const acc_t pos = x > acc_t(0) ? x : acc_t(0);
  return pos - x * t + log1p(exp(-fabs(x)));
}

// d bce_with_logits / dx.
template <typename acc_t>
MASKX_HOST_DEVICE acc_t bce_with_logits_grad(acc_t x, acc_t t) {
  return sigmoid(x) - t;
}

} // namespace mask_logits
} // namespace maskx
