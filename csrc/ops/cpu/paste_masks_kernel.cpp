// CPU kernels of maskx::paste_masks and maskx::paste_masks_rle.
//
// paste_masks: the output is cut into tasks of (mask, block of image rows) that threads
// take from a shared counter, so one mask's rows are split between threads too. A task
// zeroes its rows outside the mask's box and computes only the box's pixels. Big boxes
// (ATen's generic resize) interpolate each needed source row of the padded mask once
// horizontally at the box's columns, then each image row is a vectorisable vertical blend
// of two such rows; small boxes take ATen's four-weight formula per pixel (see
// ops/paste_masks_common.h). paste_masks_rle: masks to threads; each thresholds its box's
// pixels into a crop and encodes the runs (ops/paste_masks_checks.cpp), so the
// image-sized masks are never built.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ops/cpu/output_cache.h"
#include "ops/cpu/parallel_dynamic.h"
#include "ops/cpu/streaming_store.h"
#include "ops/paste_masks_checks.h"
#include "ops/paste_masks_common.h"

namespace maskx {
namespace paste_masks {
namespace {

// Image pixels per task of the dense output (a few dozen rows of a large image).
constexpr int64_t kPixelsPerTask = 1 << 16;

template <typename T>
struct Scratch {
  std::vector<Tap<T>> columns; // column taps (RLE: per mask)
  std::vector<T> padded; // one row of the padded mask
  std::vector<T> table; // source rows interpolated at the box's columns
  std::vector<T> values; // one image row of the box
  std::vector<uint8_t> crop; // RLE: the thresholded box
  std::vector<uint8_t> row; // one output row of the box, before it is streamed out
};

template <typename scalar_t>
class Paster {
 public:
  using T = at::opmath_type<scalar_t>;

  Paster(const at::Tensor& masks, int64_t padding)
      : masks_(masks.data_ptr<scalar_t>()),
        m_h_(masks.size(1)),
        m_w_(masks.size(2)),
        padding_(padding),
        in_h_(masks.size(1) + 2 * padding),
        in_w_(masks.size(2) + 2 * padding) {}

  // Taps of the image columns [g.x_begin, g.x_end).
  void column_taps(const Geometry& g, Tap<T>* taps) const {
    const T scale = resize_scale<T>(in_w_, g.width);
    for (int64_t x = g.x_begin; x < g.x_end; ++x) {
      taps[x - g.x_begin] = resize_tap<T>(x - g.box_x0, in_w_, g.width, scale);
    }
  }

  // Calls emit(y, values) for the image rows y in [ya, yb) (inside the box's rows), with
  // the resized mask at the image columns [g.x_begin, g.x_end).
  template <typename Emit>
  void rows(int64_t n, const Geometry& g, const Tap<T>* xt, int64_t ya, int64_t yb, Scratch<T>& s, const Emit& emit)
      const {
    const int64_t cols = g.x_end - g.x_begin;
    const scalar_t* mask = masks_ + n * m_h_ * m_w_;
    const T y_scale = resize_scale<T>(in_h_, g.height);
    s.values.resize(cols);
    T* v = s.values.data();
    if (g.small()) {
      for (int64_t y = ya; y < yb; ++y) {
        const Tap<T> ty = resize_tap<T>(y - g.box_y0, in_h_, g.height, y_scale);
        for (int64_t j = 0; j < cols; ++j) {
          const Tap<T>& tx = xt[j];
          v[j] = four_tap(
              sample(mask, ty.i0, tx.i0),
              sample(mask, ty.i0, tx.i1),
              sample(mask, ty.i1, tx.i0),
              sample(mask, ty.i1, tx.i1),
              ty,
              tx);
        }
        emit(y, static_cast<const T*>(v));
      }
      return;
    }
    // Source rows [r_lo, r_hi] feed these image rows (taps grow with y).
    const int64_t r_lo = resize_tap<T>(ya - g.box_y0, in_h_, g.height, y_scale).i0;
    const int64_t r_hi = resize_tap<T>(yb - 1 - g.box_y0, in_h_, g.height, y_scale).i1;
    s.padded.resize(in_w_);
    s.table.resize((r_hi - r_lo + 1) * cols);
    for (int64_t r = r_lo; r <= r_hi; ++r) {
      for (int64_t c = 0; c < in_w_; ++c)
        s.padded[c] = sample(mask, r, c);
      const T* p = s.padded.data();
      T* h = s.table.data() + (r - r_lo) * cols;
      for (int64_t j = 0; j < cols; ++j)
        h[j] = lerp_columns(p[xt[j].i0], p[xt[j].i1], xt[j]);
    }
    for (int64_t y = ya; y < yb; ++y) {
      const Tap<T> ty = resize_tap<T>(y - g.box_y0, in_h_, g.height, y_scale);
      const T* top = s.table.data() + (ty.i0 - r_lo) * cols;
      const T* bottom = s.table.data() + (ty.i1 - r_lo) * cols;
      const T l0 = ty.l0, l1 = ty.l1;
      for (int64_t j = 0; j < cols; ++j)
        v[j] = lerp_rows(top[j], bottom[j], l0, l1);
      emit(y, static_cast<const T*>(v));
    }
  }

 private:
  T sample(const scalar_t* mask, int64_t i, int64_t j) const {
    return padded_sample<T>(mask, m_h_, m_w_, padding_, i, j);
  }

  const scalar_t* masks_;
  int64_t m_h_, m_w_, padding_, in_h_, in_w_;
};

template <typename scalar_t>
struct Threshold {
  using T = at::opmath_type<scalar_t>;
  T value;
  explicit Threshold(double t) : value(rounded_threshold<scalar_t, T>(t)) {}
  bool operator()(T v) const {
    return paste_masks::above<scalar_t>(v, value);
  }
};

template <typename scalar_t, typename out_t>
void paste_dense(
    const at::Tensor& masks,
    const std::vector<Geometry>& geo,
    int64_t height,
    int64_t width,
    int64_t padding,
    std::optional<double> threshold,
    at::Tensor& output) {
  using T = at::opmath_type<scalar_t>;
  const int64_t n_masks = masks.size(0);
  const Paster<scalar_t> paster(masks, padding);
  // Column taps of every mask, computed once.
  std::vector<int64_t> tap_offset(n_masks + 1, 0);
  for (int64_t n = 0; n < n_masks; ++n) {
    tap_offset[n + 1] = tap_offset[n] + (geo[n].empty() ? 0 : geo[n].x_end - geo[n].x_begin);
  }
  std::vector<Tap<T>> taps(tap_offset[n_masks]);
  at::parallel_for(0, n_masks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      if (!geo[n].empty())
        paster.column_taps(geo[n], taps.data() + tap_offset[n]);
    }
  });
  const int64_t rows_per_task =
      std::max<int64_t>(1, std::min<int64_t>(height, kPixelsPerTask / std::max<int64_t>(width, 1)));
  const int64_t blocks = (height + rows_per_task - 1) / rows_per_task;
  out_t* out = output.data_ptr<out_t>();
  const Threshold<scalar_t> above(threshold.value_or(0.0));
  cpu::parallel_for_dynamic<Scratch<T>>(n_masks * blocks, [&](int64_t task, Scratch<T>& s) {
    const int64_t n = task / blocks;
    const int64_t ya = (task % blocks) * rows_per_task, yb = std::min(ya + rows_per_task, height);
    const Geometry& g = geo[n];
    out_t* image = out + n * height * width;
    // Rows [ya, ra) and [rb, yb) are outside the box; [ra, rb) inside. Every byte of the
    // task's rows is written once, streamed (the output is far larger than the caches).
    const int64_t ra = g.empty() ? yb : std::clamp(g.y_begin, ya, yb);
    const int64_t rb = g.empty() ? yb : std::clamp(g.y_end, ra, yb);
    constexpr int64_t kSize = sizeof(out_t);
    cpu::stream_bytes(nullptr, (ra - ya) * width * kSize, image + ya * width);
    if (ra < rb) {
      const int64_t cols = g.x_end - g.x_begin;
      s.row.resize(cols * kSize);
      out_t* segment = reinterpret_cast<out_t*>(s.row.data());
      paster.rows(n, g, taps.data() + tap_offset[n], ra, rb, s, [&](int64_t y, const T* v) {
        if constexpr (std::is_same_v<out_t, bool>) {
          for (int64_t j = 0; j < cols; ++j)
            segment[j] = above(v[j]);
        } else {
          for (int64_t j = 0; j < cols; ++j)
            segment[j] = static_cast<out_t>(v[j]);
        }
        out_t* row = image + y * width;
        cpu::stream_bytes(nullptr, g.x_begin * kSize, row);
        cpu::stream_bytes(segment, cols * kSize, row + g.x_begin);
        cpu::stream_bytes(nullptr, (width - g.x_end) * kSize, row + g.x_end);
      });
    }
    cpu::stream_bytes(nullptr, (yb - rb) * width * kSize, image + rb * width);
    cpu::stream_fence();
  });
}

at::Tensor paste_masks_forward_kernel(
    const at::Tensor& masks,
    const at::Tensor& boxes,
    int64_t height,
    int64_t width,
    int64_t padding,
    std::optional<double> threshold) {
  const char* op = "paste_masks";
  check_args(op, masks, boxes, height, width, padding, threshold);
  check_box_values(op, boxes);
  const at::TensorOptions options = threshold.has_value() ? masks.options().dtype(at::kBool) : masks.options();
  at::Tensor output = cpu::empty_output({masks.size(0), height, width}, options);
  if (output.numel() == 0)
    return output;
  const std::vector<Geometry> geo = geometries(boxes, masks.size(2), padding, height, width);
  const at::Tensor m = masks.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, m.scalar_type(), "paste_masks", [&] {
    if (threshold.has_value()) {
      paste_dense<scalar_t, bool>(m, geo, height, width, padding, threshold, output);
    } else {
      paste_dense<scalar_t, scalar_t>(m, geo, height, width, padding, threshold, output);
    }
  });
  return output;
}

template <typename scalar_t>
std::vector<std::string> rle_strings(
    const at::Tensor& masks,
    const std::vector<Geometry>& geo,
    int64_t height,
    int64_t width,
    int64_t padding,
    double threshold) {
  using T = at::opmath_type<scalar_t>;
  const Paster<scalar_t> paster(masks, padding);
  const Threshold<scalar_t> above(threshold);
  std::vector<std::string> strings(masks.size(0));
  cpu::parallel_for_dynamic<Scratch<T>>(masks.size(0), [&](int64_t n, Scratch<T>& s) {
    const Geometry& g = geo[n];
    if (!g.empty()) {
      const int64_t cols = g.x_end - g.x_begin;
      s.columns.resize(cols);
      paster.column_taps(g, s.columns.data());
      s.crop.resize((g.y_end - g.y_begin) * cols);
      paster.rows(n, g, s.columns.data(), g.y_begin, g.y_end, s, [&](int64_t y, const T* v) {
        uint8_t* dst = s.crop.data() + (y - g.y_begin) * cols;
        for (int64_t j = 0; j < cols; ++j)
          dst[j] = above(v[j]);
      });
    }
    strings[n] = encode_rle(s.crop.data(), g, height, width);
  });
  return strings;
}

std::tuple<at::Tensor, at::Tensor> paste_masks_rle_forward_kernel(
    const at::Tensor& masks,
    const at::Tensor& boxes,
    int64_t height,
    int64_t width,
    int64_t padding,
    double threshold) {
  const char* op = "paste_masks_rle";
  check_args(op, masks, boxes, height, width, padding, threshold);
  check_box_values(op, boxes);
  const std::vector<Geometry> geo = geometries(boxes, masks.size(2), padding, height, width);
  const at::Tensor m = masks.contiguous();
  std::vector<std::string> strings;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, m.scalar_type(), "paste_masks_rle", [&] {
    strings = rle_strings<scalar_t>(m, geo, height, width, padding, threshold);
  });
  return pack_strings(strings);
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  m.impl("paste_masks", &paste_masks_forward_kernel);
  m.impl("paste_masks_rle", &paste_masks_rle_forward_kernel);
}

} // namespace paste_masks
} // namespace maskx
