#pragma once
// The overlap rule of maskx::nms, batched_nms and multiclass_nms, shared by the CPU and
// CUDA kernels. It is torchvision's: for boxes (x1, y1, x2, y2)
//   inter = max(min(x2) - max(x1), 0) * max(min(y2) - max(y1), 0)
//   iou   = inter / ((area_a + area_b) - inter),  area = (x2 - x1) * (y2 - y1)
// evaluated in that order in the compute type (float32 for float32/half/bfloat16 boxes,
// float64 for float64), and box b is suppressed by a kept box a when iou > threshold.
// A pair whose intersection is empty (every pair with a zero- or negative-area box among
// them) has IoU 0, so it never suppresses: torchvision reaches the same result through
// 0 / union or NaN, never above a threshold in [0, 1].
#include <cmath>
#include <limits>

#include "ops/host_device.h"

namespace maskx {
namespace nms {

// Rounded IEEE operations. nvcc contracts a * b + c into one fused multiply-add by
// default, the host compiler does not (ISO C++ mode): spelling the rounding out keeps
// the CUDA kernels bit-identical to the CPU kernels and to torchvision's CPU nms.
MASKX_HOST_DEVICE float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MASKX_HOST_DEVICE double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
MASKX_HOST_DEVICE float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
MASKX_HOST_DEVICE double add_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
MASKX_HOST_DEVICE float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
MASKX_HOST_DEVICE double sub_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}

MASKX_HOST_DEVICE float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
MASKX_HOST_DEVICE double div_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

template <typename T>
MASKX_HOST_DEVICE T box_area(T x1, T y1, T x2, T y2) {
  return mul_rn(sub_rn(x2, x1), sub_rn(y2, y1));
}

// True when box b (with precomputed area) overlaps box a by more than `threshold`, where
// `threshold` comes from compute_threshold below.
template <typename T>
MASKX_HOST_DEVICE bool iou_above(
    T ax1,
    T ay1,
    T ax2,
    T ay2,
    T a_area,
    T bx1,
    T by1,
    T bx2,
    T by2,
    T b_area,
    T threshold) {
  const T w = sub_rn(bx2 < ax2 ? bx2 : ax2, bx1 > ax1 ? bx1 : ax1);
  const T h = sub_rn(by2 < ay2 ? by2 : ay2, by1 > ay1 ? by1 : ay1);
  const T inter = mul_rn(w > T(0) ? w : T(0), h > T(0) ? h : T(0));
  if (!(inter > T(0))) {
    return false;
  }
  return div_rn(inter, sub_rn(add_rn(a_area, b_area), inter)) > threshold;
}

// torchvision compares the compute-type IoU with the threshold in float64. For every
// value v of type T, v > threshold (in float64) iff v > the largest T not above the
// threshold, so the kernels compare in T against that value.
template <typename T>
inline T compute_threshold(double threshold) {
  T t = static_cast<T>(threshold);
  if (static_cast<double>(t) > threshold) {
    t = std::nextafter(t, -std::numeric_limits<T>::infinity());
  }
  return t;
}

} // namespace nms
} // namespace maskx
