#pragma once
// RoIAlign sampling math shared by the CPU and CUDA kernels (torchvision's semantics):
// a RoI is split into pooled_h x pooled_w bins, each bin averages grid_h x grid_w
// bilinear samples, and a sample outside [-1, size] on either axis counts as zero.
// The sample grid is a tensor product, so a bin's weights factor into a row part and
// a column part; the kernels exploit that.
#include <cmath>
#include <cstdint>

#include "ops/host_device.h"

namespace maskx {
namespace roi_align {

template <typename T>
struct RoIGeometry {
  T start_h, start_w; // top-left corner in input pixels
  T bin_h, bin_w; // bin size in input pixels
  int64_t grid_h, grid_w; // samples per bin along each axis
  T inv_count; // 1 / samples per bin
};

template <typename T>
MASKX_HOST_DEVICE RoIGeometry<T> roi_geometry(
    T x1,
    T y1,
    T x2,
    T y2,
    T spatial_scale,
    int64_t pooled_h,
    int64_t pooled_w,
    int64_t sampling_ratio,
    bool aligned) {
  const T offset = aligned ? T(0.5) : T(0);
  RoIGeometry<T> g;
  g.start_w = x1 * spatial_scale - offset;
  g.start_h = y1 * spatial_scale - offset;
  T roi_w = x2 * spatial_scale - offset - g.start_w;
  T roi_h = y2 * spatial_scale - offset - g.start_h;
  if (!aligned) {
    // The legacy (non-aligned) RoIAlign forces malformed RoIs to be at least 1x1.
    roi_w = roi_w > T(1) ? roi_w : T(1);
    roi_h = roi_h > T(1) ? roi_h : T(1);
  }
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(ceil(roi_h / static_cast<T>(pooled_h)));
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int64_t>(ceil(roi_w / static_cast<T>(pooled_w)));
  const int64_t count = g.grid_h * g.grid_w;
  g.inv_count = T(1) / static_cast<T>(count > 1 ? count : 1);
  return g;
}

// Position of sample `i` of bin `p` along one axis.
template <typename T>
MASKX_HOST_DEVICE T sample_coord(T start, T bin, int64_t p, int64_t i, int64_t grid) {
  return start + static_cast<T>(p) * bin + (static_cast<T>(i) + T(0.5)) * bin / static_cast<T>(grid);
}

// The two bilinear taps of a sample along one axis of an input of length `size`. GPU
// kernels use a 32-bit index I where the axis allows it (64-bit conversions are slow there).
template <typename T, typename I = int64_t>
struct AxisTaps {
  I low, high;
  T w_low, w_high;
};

// Returns false for a sample outside [-1, size] (or an empty axis): it contributes nothing.
template <typename T, typename I>
MASKX_HOST_DEVICE bool axis_taps(T coord, I size, AxisTaps<T, I>& taps) {
  if (size <= 0 || coord < T(-1) || coord > static_cast<T>(size)) {
    return false;
  }
  if (coord <= T(0)) {
    coord = T(0);
  }
  taps.low = static_cast<I>(coord);
  if (taps.low >= size - 1) {
    taps.low = taps.high = size - 1;
    coord = static_cast<T>(taps.low);
  } else {
    taps.high = taps.low + 1;
  }
  taps.w_high = coord - static_cast<T>(taps.low);
  taps.w_low = T(1) - taps.w_high;
  return true;
}

// One pixel row (or column) of a bin and the summed weight of all its samples there.
template <typename T>
struct Tap {
  int64_t index;
  T weight;
};

// Sample rows are non-decreasing, so a repeated row is one of the last two taps.
template <typename T>
MASKX_HOST_DEVICE void add_tap(Tap<T>* taps, int64_t& n, int64_t index, T weight) {
  if (n > 0 && taps[n - 1].index == index) {
    taps[n - 1].weight += weight;
  } else if (n > 1 && taps[n - 2].index == index) {
    taps[n - 2].weight += weight;
  } else {
    taps[n].index = index;
    taps[n].weight = weight;
    ++n;
  }
}

// The merged taps of bin `p` along one axis, every weight scaled by `scale`. Writes at
// most max_bin_axis_taps(...) taps and returns how many.
template <typename T>
MASKX_HOST_DEVICE int64_t bin_axis_taps(T start, T bin, int64_t p, int64_t grid, int64_t size, T scale, Tap<T>* taps) {
  int64_t n = 0;
  for (int64_t i = 0; i < grid; ++i) {
    AxisTaps<T> s;
    if (!axis_taps(sample_coord(start, bin, p, i, grid), size, s)) {
      continue;
    }
    add_tap(taps, n, s.low, s.w_low * scale);
    add_tap(taps, n, s.high, s.w_high * scale);
  }
  return n;
}

// Upper bound on bin_axis_taps' result. Only an increasing sample sequence (bin >= 0)
// is fully merged; a reversed RoI (aligned mode allows one) may repeat rows.
template <typename T>
MASKX_HOST_DEVICE int64_t max_bin_axis_taps(T bin, int64_t grid, int64_t size) {
  const int64_t all = grid > 0 ? 2 * grid : 0;
  return bin >= T(0) && size < all ? size : all;
}

// Summed bilinear weight that the samples of bin `p` put on pixel `index` along one axis
// (unscaled). The row weight times the column weight is the bin's weight on a pixel.
template <typename T>
MASKX_HOST_DEVICE T axis_weight(T start, T bin, int64_t p, int64_t grid, int64_t size, int64_t index) {
  T weight = T(0);
  for (int64_t i = 0; i < grid; ++i) {
    AxisTaps<T> s;
    if (!axis_taps(sample_coord(start, bin, p, i, grid), size, s)) {
      continue;
    }
    weight += (s.low == index ? s.w_low : T(0)) + (s.high == index ? s.w_high : T(0));
  }
  return weight;
}

} // namespace roi_align
} // namespace maskx
