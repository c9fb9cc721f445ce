#pragma once
// Per-mask geometry and per-pixel math of maskx::paste_masks, shared by the CPU and CUDA
// kernels (and the host side of the CUDA RLE path).
//
// The result is torchvision's paste_masks_in_image, pixel for pixel: the M x M mask is
// padded by `padding` zeros on each side, its box is scaled about its centre by
// (M + 2 padding) / M and truncated to integers, the padded mask is resized bilinearly
// (align_corners=False) to the integer box's size, and the part inside the image is
// written. The arithmetic repeats, operation for operation, what torchvision's calls
// compute on the CPU: expand_boxes' float steps (each its own tensor op, so never fused
// here either), and ATen's CPU upsample_bilinear2d. ATen resizes with one of two kernels:
// the generic one (output height + width > 128) interpolates the two source rows
// horizontally, then vertically; the channels-last one (<= 128, small boxes) weights the
// four taps with products of the row and column weights. Both are compiled with fused
// multiply-adds on x86 with FMA (AVX2 builds), on ARM and on CUDA, so the same fusions are
// written out here (madd).
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ops/host_device.h"

namespace maskx {
namespace paste_masks {

// Largest absolute box coordinate accepted (the expanded box stays far inside int64).
constexpr double kMaxCoordinate = 1073741824.0; // 2^30
constexpr int64_t kMaxPadding = 65536;
// ATen's CPU resize takes the four-weight kernel when output height + width <= this.
constexpr int64_t kSmallOutputExtent = 128;

// a * b + c, fused wherever ATen's resize kernels are fused.
template <typename T>
MASKX_HOST_DEVICE T madd(T a, T b, T c) {
#if defined(__CUDA_ARCH__)
  return fma(a, b, c);
#elif defined(__FMA__) || defined(__aarch64__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// a * b rounded to T on its own: never fused with a later addition (torchvision computes
// each step of expand_boxes as a separate tensor op).
template <typename T>
MASKX_HOST_DEVICE T mul_rounded(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same<T, double>::value) {
    return __dmul_rn(a, b);
  } else {
    return __fmul_rn(a, b);
  }
#else
  volatile T product = a * b;
  return product;
#endif
}

// Where one mask lands in the image.
struct Geometry {
  int64_t box_x0, box_y0; // top-left corner of the expanded integer box
  int64_t width, height; // size the padded mask is resized to (>= 1)
  int64_t x_begin, x_end; // image columns [x_begin, x_end) it covers (maybe none)
  int64_t y_begin, y_end; // image rows [y_begin, y_end)

  MASKX_HOST_DEVICE bool empty() const {
    return x_begin >= x_end || y_begin >= y_end;
  }
  // ATen's four-weight (channels-last) resize kernel, for small outputs.
  MASKX_HOST_DEVICE bool small() const {
    return width + height <= kSmallOutputExtent;
  }
};

MASKX_HOST_DEVICE int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}
MASKX_HOST_DEVICE int64_t max64(int64_t a, int64_t b) {
  return a > b ? a : b;
}

// torchvision's expand_boxes (scale = (M + 2 padding) / M in T, as a float32 tensor
// times a Python float), .to(int64), and paste_mask_in_image's size and clipping. Boxes
// that lie wholly outside the image cover no pixel (torchvision's slicing raises there).
template <typename T>
MASKX_HOST_DEVICE Geometry box_geometry(const T* box, T scale, int64_t image_h, int64_t image_w) {
  const T half(0.5);
  const T w_half = mul_rounded(mul_rounded(T(box[2] - box[0]), half), scale);
  const T h_half = mul_rounded(mul_rounded(T(box[3] - box[1]), half), scale);
  const T x_c = mul_rounded(T(box[2] + box[0]), half);
  const T y_c = mul_rounded(T(box[3] + box[1]), half);
  const int64_t x0 = static_cast<int64_t>(T(x_c - w_half));
  const int64_t x1 = static_cast<int64_t>(T(x_c + w_half));
  const int64_t y0 = static_cast<int64_t>(T(y_c - h_half));
  const int64_t y1 = static_cast<int64_t>(T(y_c + h_half));
  Geometry g;
  g.box_x0 = x0;
  g.box_y0 = y0;
  g.width = max64(x1 - x0 + 1, 1);
  g.height = max64(y1 - y0 + 1, 1);
  // Clipped to the image; an empty range when the box misses it.
  g.x_begin = min64(max64(x0, 0), image_w);
  g.x_end = max64(min64(x1 + 1, image_w), g.x_begin);
  g.y_begin = min64(max64(y0, 0), image_h);
  g.y_end = max64(min64(y1 + 1, image_h), g.y_begin);
  return g;
}

// The two source indices and weights of output index `out` when resizing `in_size`
// samples to `out_size` (ATen's compute_source_index_and_lambda, align_corners=False).
// `scale` is in_size / out_size in T (resize_scale).
template <typename T>
struct Tap {
  int64_t i0, i1;
  T l0, l1;
};

template <typename T>
MASKX_HOST_DEVICE T resize_scale(int64_t in_size, int64_t out_size) {
  return static_cast<T>(in_size) / static_cast<T>(out_size);
}

template <typename T>
MASKX_HOST_DEVICE Tap<T> resize_tap(int64_t out, int64_t in_size, int64_t out_size, T scale) {
  Tap<T> t;
  if (in_size == out_size) {
    t.i0 = t.i1 = out;
    t.l0 = T(1);
    t.l1 = T(0);
    return t;
  }
  T real = madd(scale, T(static_cast<T>(out) + T(0.5)), T(-0.5));
  if (real < T(0))
    real = T(0);
  const int64_t floor_index = static_cast<int64_t>(floor(real));
  t.i0 = min64(floor_index, in_size - 1);
  T lambda = real - static_cast<T>(t.i0);
  lambda = lambda < T(0) ? T(0) : (lambda > T(1) ? T(1) : lambda);
  t.i1 = t.i0 + (t.i0 < in_size - 1 ? 1 : 0);
  t.l1 = lambda;
  t.l0 = T(1) - lambda;
  return t;
}

// Generic kernel: a source row interpolated horizontally at one column ...
template <typename T>
MASKX_HOST_DEVICE T lerp_columns(T left, T right, const Tap<T>& x) {
  return madd(left, x.l0, T(right * x.l1));
}

// ... and two such values interpolated vertically.
template <typename T>
MASKX_HOST_DEVICE T lerp_rows(T top, T bottom, T l0, T l1) {
  return madd(top, l0, T(bottom * l1));
}

// Four-weight kernel (small outputs): taps a = (i0, j0), b = (i0, j1), c = (i1, j0),
// d = (i1, j1).
template <typename T>
MASKX_HOST_DEVICE T four_tap(T a, T b, T c, T d, const Tap<T>& y, const Tap<T>& x) {
  const T w00 = y.l0 * x.l0, w01 = y.l0 * x.l1, w10 = y.l1 * x.l0, w11 = y.l1 * x.l1;
  return madd(d, w11, madd(c, w10, madd(a, w00, T(b * w01))));
}

// Value of the padded mask's resize at box pixel (oy, ox), 0 <= oy < g.height,
// 0 <= ox < g.width. `get(i, j)` reads padded-mask sample (row i, column j); the padded
// mask is in_h x in_w. One pixel at a time (the CUDA kernel, and small boxes on the CPU).
template <typename T, typename Get>
MASKX_HOST_DEVICE T
resized_pixel(const Geometry& g, int64_t oy, int64_t ox, int64_t in_h, int64_t in_w, const Get& get) {
  const Tap<T> y = resize_tap<T>(oy, in_h, g.height, resize_scale<T>(in_h, g.height));
  const Tap<T> x = resize_tap<T>(ox, in_w, g.width, resize_scale<T>(in_w, g.width));
  const T a = get(y.i0, x.i0), b = get(y.i0, x.i1), c = get(y.i1, x.i0), d = get(y.i1, x.i1);
  if (g.small())
    return four_tap(a, b, c, d, y, x);
  return lerp_rows(lerp_columns(a, b, x), lerp_columns(c, d, x), y.l0, y.l1);
}

// Sample (i, j) of the mask padded by `padding` zeros: mask is m_h x m_w, row-major.
template <typename T, typename scalar_t>
MASKX_HOST_DEVICE T
padded_sample(const scalar_t* mask, int64_t m_h, int64_t m_w, int64_t padding, int64_t i, int64_t j) {
  const int64_t r = i - padding, c = j - padding;
  return (r >= 0 && r < m_h && c >= 0 && c < m_w) ? static_cast<T>(mask[r * m_w + c]) : T(0);
}

// What torchvision's output then `> threshold` gives: the value rounded to the masks'
// dtype (scalar_t), compared in that dtype with the threshold (already rounded to it).
template <typename scalar_t, typename T>
MASKX_HOST_DEVICE bool above(T value, T threshold) {
  return static_cast<T>(static_cast<scalar_t>(value)) > threshold;
}

template <typename scalar_t, typename T>
MASKX_HOST_DEVICE T rounded_threshold(double threshold) {
  return static_cast<T>(static_cast<scalar_t>(threshold));
}

} // namespace paste_masks
} // namespace maskx
