#pragma once
// CPU building blocks shared by the per_class_mask_logits and per_class_mask_loss
// kernels. A RoI's features are a contiguous [K, P] block (P = H * W pixels), so its
// logits are an AXPY-style accumulation over K rows into a P-long buffer that stays in
// L1, and its backward pass reads each feature row once while writing the matching
// gradient row. Per-class weight gradients are first formed per RoI, then summed over
// the RoIs of each class in RoI order: deterministic, with no atomics.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <array>
#include <type_traits>
#include <vector>

#include "ops/mask_logits_common.h"

namespace maskx {
namespace mask_logits {

template <typename T>
using Vec = at::vec::Vectorized<T>;

// Feature rows roi_logits folds into the accumulator per sweep over it; each sweep
// prefetches the next sweep's rows (the hardware prefetcher stops at every 4 KiB page,
// which the 3 KiB rows of a 28x28 RoI cross often). Each sweep reads and writes the whole
// accumulator, so more rows per sweep means fewer passes over it; 8 rows, one sweep
// ahead, is the fastest of the variants compared in benchmarks/RESULTS.md (fewer rows,
// and prefetching two sweeps ahead).
constexpr int64_t kRowsPerSweep = 8;

// Raises IndexError on a class index outside [0, num_classes).
inline void check_class_values(const at::Tensor& classes, int64_t num_classes, const char* op) {
  const int64_t* c = classes.data_ptr<int64_t>();
  for (int64_t r = 0; r < classes.numel(); ++r) {
    TORCH_CHECK_INDEX(
        c[r] >= 0 && c[r] < num_classes,
        op,
        ": RoI ",
        r,
        " has class ",
        c[r],
        ", expected one in [0, ",
        num_classes,
        ")");
  }
}

// A row of `scalar_t` values seen in the accumulation type: the row itself for float
// and double, a converted copy in `scratch` for half and bfloat16.
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
inline const acc_t* acc_row(const scalar_t* row, int64_t n, std::vector<acc_t>& scratch) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    return row;
  } else {
    scratch.resize(n);
    for (int64_t i = 0; i < n; ++i)
      scratch[i] = static_cast<acc_t>(row[i]);
    return scratch.data();
  }
}

template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
inline void store_row(const acc_t* src, int64_t n, scalar_t* dst) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (src != dst)
      std::copy(src, src + n, dst);
  } else {
    for (int64_t i = 0; i < n; ++i)
      dst[i] = static_cast<scalar_t>(src[i]);
  }
}

// Per-thread buffers of one RoI's work.
template <typename acc_t>
struct RoIScratch {
  std::vector<acc_t> logits, grad, agnostic;
  std::array<std::vector<acc_t>, kRowsPerSweep> rows;
};

// out[p] += sum_{i < kRows} w[i] * f[i, p]: kRows sequential read streams, one load and
// one store of the accumulator per kRows multiply-adds. `ahead`, when not null, is the
// first of kRows rows to prefetch alongside.
template <int64_t kRows, typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
inline void accumulate_rows(
    const scalar_t* f,
    const scalar_t* w,
    int64_t pixels,
    acc_t* out,
    RoIScratch<acc_t>& s,
    const scalar_t* ahead) {
  constexpr int64_t kStep = Vec<acc_t>::size();
  const acc_t* rows[kRows];
  Vec<acc_t> weights[kRows];
  for (int64_t i = 0; i < kRows; ++i) {
    rows[i] = acc_row(f + i * pixels, pixels, s.rows[i]);
    weights[i] = Vec<acc_t>(static_cast<acc_t>(w[i]));
  }
  for (int64_t p = 0; p < pixels; p += kStep) {
    const int64_t n = std::min(kStep, pixels - p);
    if (ahead != nullptr) {
      for (int64_t i = 0; i < kRows; ++i)
        __builtin_prefetch(ahead + i * pixels + p);
    }
    Vec<acc_t> a = Vec<acc_t>::loadu(out + p, n);
    for (int64_t i = 0; i < kRows; ++i)
      a = at::vec::fmadd(weights[i], Vec<acc_t>::loadu(rows[i] + p, n), a);
    a.store(out + p, n);
  }
}

// logits[p] = bias + agnostic[p] + sum_k w[k] * f[k, p] for one RoI, in acc_t.
// `agnostic` may be null.
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
void roi_logits(
    const scalar_t* f,
    const scalar_t* w,
    int64_t num_channels,
    int64_t pixels,
    acc_t bias,
    const scalar_t* agnostic,
    RoIScratch<acc_t>& s) {
  s.logits.resize(pixels);
  acc_t* out = s.logits.data();
  if (agnostic != nullptr) {
    const acc_t* a = acc_row(agnostic, pixels, s.agnostic);
    for (int64_t p = 0; p < pixels; ++p)
      out[p] = a[p] + bias;
  } else {
    std::fill(out, out + pixels, bias);
  }
  int64_t k = 0;
  for (; k + kRowsPerSweep <= num_channels; k += kRowsPerSweep) {
    const scalar_t* next = f + (k + kRowsPerSweep) * pixels;
    const bool prefetch = k + 2 * kRowsPerSweep <= num_channels;
    accumulate_rows<kRowsPerSweep>(f + k * pixels, w + k, pixels, out, s, prefetch ? next : nullptr);
  }
  for (; k < num_channels; ++k) {
    accumulate_rows<1>(f + k * pixels, w + k, pixels, out, s, static_cast<const scalar_t*>(nullptr));
  }
}

template <typename acc_t>
inline Vec<acc_t> vec_sigmoid(const Vec<acc_t>& x) {
  const Vec<acc_t> one(acc_t(1));
  return one / (one + x.neg().exp());
}

template <typename acc_t>
inline acc_t vec_sum(const Vec<acc_t>& v) {
  acc_t lanes[Vec<acc_t>::size()];
  v.store(lanes);
  acc_t total = acc_t(0);
  for (int64_t i = 0; i < Vec<acc_t>::size(); ++i)
    total += lanes[i];
  return total;
}

// Backward of one RoI given its logits' gradient g (acc_t, P values):
// grad_f[k, p] = w[k] * g[p] and grad_w[k] = sum_p f[k, p] * g[p], in one pass over f.
// Returns sum_p g[p], the RoI's share of its class's bias gradient.
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
acc_t roi_backward(
    const scalar_t* f,
    const scalar_t* w,
    const acc_t* g,
    int64_t num_channels,
    int64_t pixels,
    scalar_t* grad_f,
    acc_t* grad_w,
    RoIScratch<acc_t>& s) {
  constexpr int64_t kStep = Vec<acc_t>::size();
  for (int64_t k = 0; k < num_channels; ++k) {
    const acc_t* fk = acc_row(f + k * pixels, pixels, s.rows[0]);
    const Vec<acc_t> wk(static_cast<acc_t>(w[k]));
    acc_t* out;
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      out = grad_f + k * pixels;
    } else {
      s.rows[1].resize(pixels);
      out = s.rows[1].data();
    }
    Vec<acc_t> dot(acc_t(0));
    for (int64_t p = 0; p < pixels; p += kStep) {
      const int64_t n = std::min(kStep, pixels - p);
      const Vec<acc_t> gp = Vec<acc_t>::loadu(g + p, n);
      (wk * gp).store(out + p, n);
      dot = at::vec::fmadd(Vec<acc_t>::loadu(fk + p, n), gp, dot);
    }
    store_row<scalar_t>(out, pixels, grad_f + k * pixels);
    grad_w[k] = vec_sum(dot);
  }
  Vec<acc_t> total(acc_t(0));
  for (int64_t p = 0; p < pixels; p += kStep) {
    total = total + Vec<acc_t>::loadu(g + p, std::min(kStep, pixels - p));
  }
  return vec_sum(total);
}

// RoIs grouped by class: order[offsets[c] .. offsets[c + 1]) are class c's RoIs in
// increasing RoI order (a stable counting sort).
struct ClassGroups {
  std::vector<int64_t> order, offsets;
};

inline ClassGroups group_by_class(const int64_t* classes, int64_t num_rois, int64_t num_classes) {
  ClassGroups g;
  g.offsets.assign(num_classes + 1, 0);
  for (int64_t r = 0; r < num_rois; ++r)
    ++g.offsets[classes[r] + 1];
  for (int64_t c = 0; c < num_classes; ++c)
    g.offsets[c + 1] += g.offsets[c];
  std::vector<int64_t> next(g.offsets.begin(), g.offsets.end() - 1);
  g.order.resize(num_rois);
  for (int64_t r = 0; r < num_rois; ++r)
    g.order[next[classes[r]]++] = r;
  return g;
}

// out[c, :] = sum over class c's RoIs r (in RoI order) of partial[r, :]; classes
// without RoIs get zeros. Parallel over classes once there are enough of them to pay
// for waking the thread pool.
template <typename scalar_t, typename acc_t>
void sum_by_class(const acc_t* partial, int64_t width, const ClassGroups& groups, int64_t num_classes, scalar_t* out) {
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(width, 1));
  at::parallel_for(0, num_classes, grain, [&](int64_t lo, int64_t hi) {
    std::vector<acc_t> acc(width);
    for (int64_t c = lo; c < hi; ++c) {
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t i = groups.offsets[c]; i < groups.offsets[c + 1]; ++i) {
        const acc_t* row = partial + groups.order[i] * width;
        for (int64_t j = 0; j < width; ++j)
          acc[j] += row[j];
      }
      for (int64_t j = 0; j < width; ++j)
        out[c * width + j] = static_cast<scalar_t>(acc[j]);
    }
  });
}

// Writes the weight and bias gradients from the per-RoI partials [R, K + 1] (K weight
// gradients then the bias gradient of each RoI): grad_weights [C, K], grad_bias [C].
template <typename scalar_t, typename acc_t>
void class_gradients(
    const std::vector<acc_t>& partial,
    const int64_t* classes,
    int64_t num_rois,
    int64_t num_channels,
    at::Tensor& grad_weights,
    at::Tensor& grad_bias) {
  const int64_t num_classes = grad_weights.size(0);
  const ClassGroups groups = group_by_class(classes, num_rois, num_classes);
  std::vector<acc_t> sums(num_classes * (num_channels + 1));
  sum_by_class(partial.data(), num_channels + 1, groups, num_classes, sums.data());
  scalar_t* gw = grad_weights.data_ptr<scalar_t>();
  scalar_t* gb = grad_bias.data_ptr<scalar_t>();
  for (int64_t c = 0; c < num_classes; ++c) {
    store_row<scalar_t>(sums.data() + c * (num_channels + 1), num_channels, gw + c * num_channels);
    gb[c] = static_cast<scalar_t>(sums[c * (num_channels + 1) + num_channels]);
  }
}

} // namespace mask_logits
} // namespace maskx
