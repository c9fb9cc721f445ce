// CPU kernels of maskx::roi_align and maskx::multi_scale_roi_align (the single-level op
// is the one-level case of the pyramid op).
//
// Work is split into tasks that own one (level, image, block of kChannelBlock channels).
// A RoI's bin weights factor into row taps and column taps (roi_align_common.h), computed
// once per RoI. When a (level, image) has many taps per pixel, its task first packs its
// channel block into a pixel-major buffer ([H, W, kChannelBlock], float accumulation
// type), so every tap is one contiguous vector load whatever the input layout (NCHW,
// channels-last or strided) and the block stays cache-resident while all of the image's
// RoIs are pooled from it. Sparse (level, image) pairs read the input in place. The
// backward pass scatters into the same buffer and each task owns its slice of the
// gradient, so it is deterministic without atomics.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ops/cpu/output_cache.h"
#include "ops/cpu/parallel_dynamic.h"
#include "ops/cpu/streaming_store.h"
#include "ops/roi_align_common.h"
#include "ops/roi_align_entry_points.h"

namespace maskx {
namespace roi_align {
namespace {

constexpr int64_t kChannelBlock = 16;
// Side of the register-tile transposes between channel-major and pixel-major layouts.
constexpr int64_t kTile = 16;
static_assert(kChannelBlock % kTile == 0, "channel blocks are whole transpose tiles");
// Largest packed block per task; larger maps are read in place.
constexpr int64_t kMaxPackedBytes = int64_t(64) << 20;
// How many bins ahead the packed path prefetches (2, 3 and 6 measured no better).
constexpr int64_t kPrefetchBins = 1;

struct LevelView {
  int64_t height, width;
  int64_t stride_n, stride_c, stride_h, stride_w;
  double scale;
};

// Taps of every RoI: rows of bins 0..PH-1, then columns of bins 0..PW-1.
template <typename acc_t>
struct RoITaps {
  int64_t bins_per_roi = 0;
  std::vector<Tap<acc_t>> taps;
  std::vector<int64_t> begin, count; // [K * bins_per_roi]

  const Tap<acc_t>* bin(int64_t roi, int64_t b) const {
    return taps.data() + begin[roi * bins_per_roi + b];
  }
  int64_t size(int64_t roi, int64_t b) const {
    return count[roi * bins_per_roi + b];
  }
};

// The RoIs of one (level, image) pair, in input order.
struct Group {
  int64_t level, image;
  std::vector<int64_t> rois;
  int64_t taps_per_channel = 0;
  bool packed = false;
};

struct Problem {
  int64_t batch, channels, pooled_h, pooled_w, sampling_ratio;
  bool aligned;
  std::vector<LevelView> levels;
};

// Raises on a RoI whose batch index is not an integer in [0, batch), whose coordinates
// are not finite, or whose level is out of range.
template <typename scalar_t>
void check_roi_values(const at::Tensor& rois, const int64_t* level_of, int64_t batch, int64_t num_levels) {
  const char* op = level_of != nullptr ? "multi_scale_roi_align" : "roi_align";
  const scalar_t* r = rois.data_ptr<scalar_t>();
  for (int64_t k = 0; k < rois.size(0); ++k) {
    const double index = static_cast<double>(r[k * 5]);
    TORCH_CHECK_VALUE(
        std::floor(index) == index && index >= 0 && index < static_cast<double>(batch),
        op,
        ": RoI ",
        k,
        " has batch index ",
        index,
        ", expected an integer in [0, ",
        batch,
        ")");
    for (int j = 1; j < 5; ++j) {
      TORCH_CHECK_VALUE(
          std::isfinite(static_cast<double>(r[k * 5 + j])),
          op,
          ": RoI ",
          k,
          " has a non-finite coordinate ",
          static_cast<double>(r[k * 5 + j]));
    }
    if (level_of != nullptr) {
      TORCH_CHECK_VALUE(
          level_of[k] >= 0 && level_of[k] < num_levels,
          op,
          ": RoI ",
          k,
          " has level ",
          level_of[k],
          ", expected one in [0, ",
          num_levels,
          ")");
    }
  }
}

template <typename scalar_t, typename acc_t>
RoITaps<acc_t> compute_taps(const at::Tensor& rois, const int64_t* level_of, const Problem& p) {
  const int64_t num_rois = rois.size(0);
  const scalar_t* r = rois.data_ptr<scalar_t>();
  RoITaps<acc_t> t;
  t.bins_per_roi = p.pooled_h + p.pooled_w;
  t.begin.resize(num_rois * t.bins_per_roi);
  t.count.resize(num_rois * t.bins_per_roi);
  auto geometry = [&](int64_t k) {
    const LevelView& lv = p.levels[level_of ? level_of[k] : 0];
    return roi_geometry<acc_t>(
        r[k * 5 + 1],
        r[k * 5 + 2],
        r[k * 5 + 3],
        r[k * 5 + 4],
        static_cast<acc_t>(lv.scale),
        p.pooled_h,
        p.pooled_w,
        p.sampling_ratio,
        p.aligned);
  };
  int64_t total = 0;
  for (int64_t k = 0; k < num_rois; ++k) {
    const LevelView& lv = p.levels[level_of ? level_of[k] : 0];
    const RoIGeometry<acc_t> g = geometry(k);
    for (int64_t b = 0; b < t.bins_per_roi; ++b) {
      t.begin[k * t.bins_per_roi + b] = total;
      total += b < p.pooled_h ? max_bin_axis_taps(g.bin_h, g.grid_h, lv.height)
                              : max_bin_axis_taps(g.bin_w, g.grid_w, lv.width);
    }
  }
  t.taps.resize(total);
  at::parallel_for(0, num_rois, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) {
      const LevelView& lv = p.levels[level_of ? level_of[k] : 0];
      const RoIGeometry<acc_t> g = geometry(k);
      int64_t* begin = t.begin.data() + k * t.bins_per_roi;
      int64_t* count = t.count.data() + k * t.bins_per_roi;
      // The 1 / count average is folded into the row weights.
      for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
        count[ph] = bin_axis_taps(g.start_h, g.bin_h, ph, g.grid_h, lv.height, g.inv_count, &t.taps[begin[ph]]);
      }
      for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
        const int64_t b = p.pooled_h + pw;
        count[b] = bin_axis_taps(g.start_w, g.bin_w, pw, g.grid_w, lv.width, acc_t(1), &t.taps[begin[b]]);
      }
    }
  });
  return t;
}

// Groups RoIs by (level, image) and decides which groups are worth packing.
template <typename acc_t>
std::vector<Group> make_groups(
    const at::Tensor& rois,
    const int64_t* level_of,
    const RoITaps<acc_t>& taps,
    const Problem& p) {
  const int64_t num_levels = static_cast<int64_t>(p.levels.size());
  std::vector<Group> groups(num_levels * p.batch);
  for (int64_t l = 0; l < num_levels; ++l) {
    for (int64_t n = 0; n < p.batch; ++n) {
      groups[l * p.batch + n].level = l;
      groups[l * p.batch + n].image = n;
    }
  }
  const at::Tensor index = rois.select(1, 0).to(at::kLong);
  const int64_t* image_of = index.data_ptr<int64_t>();
  for (int64_t k = 0; k < rois.size(0); ++k) {
    Group& g = groups[(level_of ? level_of[k] : 0) * p.batch + image_of[k]];
    g.rois.push_back(k);
    int64_t rows = 0, cols = 0;
    for (int64_t b = 0; b < p.pooled_h; ++b)
      rows += taps.size(k, b);
    for (int64_t b = 0; b < p.pooled_w; ++b)
      cols += taps.size(k, p.pooled_h + b);
    g.taps_per_channel += rows * cols;
  }
  // Visiting RoIs in row bands keeps overlapping RoIs' pixels in cache between them.
  auto first_tap = [&](int64_t k, int64_t b) { return taps.size(k, b) > 0 ? taps.bin(k, b)[0].index : 0; };
  for (Group& g : groups) {
    std::stable_sort(g.rois.begin(), g.rois.end(), [&](int64_t a, int64_t b) {
      const int64_t band_a = first_tap(a, 0) / kChannelBlock, band_b = first_tap(b, 0) / kChannelBlock;
      return band_a != band_b ? band_a < band_b : first_tap(a, p.pooled_h) < first_tap(b, p.pooled_h);
    });
  }
  for (Group& g : groups) {
    const LevelView& lv = p.levels[g.level];
    const int64_t pixels = lv.height * lv.width;
    // Packing costs a pass over the block; it pays once taps outnumber pixels.
    g.packed = pixels * kChannelBlock * int64_t(sizeof(acc_t)) <= kMaxPackedBytes && 2 * g.taps_per_channel >= pixels;
  }
  return groups;
}

struct Task {
  int64_t group, channel_begin, roi; // roi < 0: every RoI of the group
  int64_t cost;
};

// Runs tasks on all threads, biggest first, each thread taking the next one free.
template <typename Body>
void run_tasks(std::vector<Task>& tasks, const Body& body) {
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.cost > b.cost; });
  cpu::parallel_for_dynamic<typename Body::Scratch>(
      static_cast<int64_t>(tasks.size()), [&](int64_t t, typename Body::Scratch& scratch) { body(tasks[t], scratch); });
}

template <typename acc_t>
using Vec = at::vec::Vectorized<acc_t>;

// Weighted sum over a bin's taps of kChannelBlock-channel pixel vectors.
// `pixel(y, x, slot)` returns a pointer to the kChannelBlock values of one pixel, valid
// until it is called again with the same slot. Columns are taken in pairs: two FMA
// chains per vector, held in registers, hide the FMA latency.
template <typename acc_t, typename Pixel>
inline void pool_bin(
    const Tap<acc_t>* rows,
    int64_t num_rows,
    const Tap<acc_t>* cols,
    int64_t num_cols,
    const Pixel& pixel,
    acc_t* out) {
  using V = Vec<acc_t>;
  constexpr int64_t kVecs = kChannelBlock / V::size();
  V even[kVecs], odd[kVecs];
  for (int64_t v = 0; v < kVecs; ++v)
    even[v] = odd[v] = V(acc_t(0));
  for (int64_t i = 0; i < num_rows; ++i) {
    const int64_t y = rows[i].index;
    const acc_t wy = rows[i].weight;
    int64_t j = 0;
    for (; j + 1 < num_cols; j += 2) {
      const V w0(wy * cols[j].weight), w1(wy * cols[j + 1].weight);
      const acc_t* p0 = pixel(y, cols[j].index, 0);
      const acc_t* p1 = pixel(y, cols[j + 1].index, 1);
      for (int64_t v = 0; v < kVecs; ++v) {
        even[v] = at::vec::fmadd(w0, V::loadu(p0 + v * V::size()), even[v]);
        odd[v] = at::vec::fmadd(w1, V::loadu(p1 + v * V::size()), odd[v]);
      }
    }
    if (j < num_cols) {
      const V w0(wy * cols[j].weight);
      const acc_t* p0 = pixel(y, cols[j].index, 0);
      for (int64_t v = 0; v < kVecs; ++v)
        even[v] = at::vec::fmadd(w0, V::loadu(p0 + v * V::size()), even[v]);
    }
  }
  for (int64_t v = 0; v < kVecs; ++v)
    (even[v] + odd[v]).store(out + v * V::size());
}

// Adds weight-scaled copies of a kChannelBlock-channel gradient vector to a bin's taps.
template <typename acc_t>
inline void scatter_bin(
    const Tap<acc_t>* rows,
    int64_t num_rows,
    const Tap<acc_t>* cols,
    int64_t num_cols,
    const acc_t* grad,
    acc_t* packed,
    int64_t width) {
  constexpr int64_t kVecs = kChannelBlock / Vec<acc_t>::size();
  Vec<acc_t> g[kVecs];
  for (int64_t v = 0; v < kVecs; ++v)
    g[v] = Vec<acc_t>::loadu(grad + v * Vec<acc_t>::size());
  for (int64_t i = 0; i < num_rows; ++i) {
    for (int64_t j = 0; j < num_cols; ++j) {
      const Vec<acc_t> w(rows[i].weight * cols[j].weight);
      acc_t* dst = packed + (rows[i].index * width + cols[j].index) * kChannelBlock;
      for (int64_t v = 0; v < kVecs; ++v) {
        const int64_t o = v * Vec<acc_t>::size();
        at::vec::fmadd(w, g[v], Vec<acc_t>::loadu(dst + o)).store(dst + o);
      }
    }
  }
}

// Copies channels [c0, c0 + num_channels) of one image into a [H, W, kChannelBlock]
// buffer, zero-padding the block.
template <typename scalar_t, typename acc_t>
void pack_block(const scalar_t* image, const LevelView& lv, int64_t c0, int64_t num_channels, acc_t* packed) {
  const int64_t h = lv.height, w = lv.width;
  if (num_channels < kChannelBlock) {
    std::fill(packed, packed + h * w * kChannelBlock, acc_t(0));
  }
  if (lv.stride_c == 1 && num_channels == kChannelBlock) {
    // Channels-last: each pixel's block is already contiguous.
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const scalar_t* src = image + c0 + y * lv.stride_h + x * lv.stride_w;
        acc_t* dst = packed + (y * w + x) * kChannelBlock;
        for (int64_t k = 0; k < kChannelBlock; ++k)
          dst[k] = static_cast<acc_t>(src[k]);
      }
    }
    return;
  }
  if (lv.stride_w != 1) {
    // Strided: each pixel's channels are gathered with one stride.
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const scalar_t* src = image + c0 * lv.stride_c + y * lv.stride_h + x * lv.stride_w;
        acc_t* dst = packed + (y * w + x) * kChannelBlock;
        for (int64_t k = 0; k < num_channels; ++k)
          dst[k] = static_cast<acc_t>(src[k * lv.stride_c]);
      }
    }
    return;
  }
  // Channel rows are contiguous (NCHW-like): transpose kChannelBlock x kChannelBlock tiles
  // in registers, then finish each row's tail.
  for (int64_t y = 0; y < h; ++y) {
    const scalar_t* row = image + c0 * lv.stride_c + y * lv.stride_h;
    acc_t* dst = packed + y * w * kChannelBlock;
    int64_t x = 0;
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      if (num_channels == kChannelBlock) {
        for (; x + kTile <= w; x += kTile) {
          for (int64_t k = 0; k < kChannelBlock; k += kTile) {
            at::vec::transpose_mxn<acc_t, kTile, kTile>(
                row + k * lv.stride_c + x, lv.stride_c, dst + x * kChannelBlock + k, kChannelBlock);
          }
        }
      }
    }
    for (int64_t k = 0; k < num_channels; ++k) {
      const scalar_t* src = row + k * lv.stride_c;
      for (int64_t xt = x; xt < w; ++xt)
        dst[xt * kChannelBlock + k] = static_cast<acc_t>(src[xt]);
    }
  }
}

// Writes a packed block into channels [c0, c0 + num_channels) of one image, which is
// channels-last (stride_c == 1) or NCHW-contiguous.
template <typename scalar_t>
void unpack_block(const scalar_t* packed, const LevelView& lv, int64_t c0, int64_t num_channels, scalar_t* image) {
  const int64_t pixels = lv.height * lv.width;
  if (lv.stride_c == 1) {
    for (int64_t i = 0; i < pixels; ++i) {
      std::copy(packed + i * kChannelBlock, packed + i * kChannelBlock + num_channels, image + i * lv.stride_w + c0);
    }
    return;
  }
  int64_t i = 0;
  if (num_channels == kChannelBlock) {
    for (; i + kTile <= pixels; i += kTile) {
      for (int64_t k = 0; k < kChannelBlock; k += kTile) {
        at::vec::transpose_mxn<scalar_t, kTile, kTile>(
            packed + i * kChannelBlock + k, kChannelBlock, image + (c0 + k) * pixels + i, pixels);
      }
    }
  }
  for (int64_t k = 0; k < num_channels; ++k) {
    scalar_t* dst = image + (c0 + k) * pixels;
    for (int64_t t = i; t < pixels; ++t)
      dst[t] = packed[t * kChannelBlock + k];
  }
}

template <typename acc_t>
struct ForwardScratch {
  std::vector<acc_t> packed, bins;
  std::vector<acc_t> slice; // one RoI's output channels, before they are streamed out
  acc_t gathered[2][kChannelBlock] = {}; // zero padding past the block's channels
};

template <typename scalar_t>
struct ForwardBody {
  using acc_t = at::opmath_type<scalar_t>;
  using Scratch = ForwardScratch<acc_t>;
  at::TensorList features;
  const std::vector<Group>& groups;
  const RoITaps<acc_t>& taps;
  const Problem& p;
  scalar_t* out;

  // Pools RoI k into s.bins, reading pixels through `pixel` (see pool_bin) and calling
  // `prefetch(ph, pw)` for the bin kPrefetchBins ahead of the one it pools.
  template <typename Pixel, typename Prefetch>
  void pool_roi(int64_t k, const Pixel& pixel, const Prefetch& prefetch, Scratch& s) const {
    const int64_t bins = p.pooled_h * p.pooled_w;
    s.bins.resize(bins * kChannelBlock);
    for (int64_t b = 0; b < std::min(kPrefetchBins, bins); ++b)
      prefetch(b / p.pooled_w, b % p.pooled_w);
    for (int64_t b = 0; b < bins; ++b) {
      if (b + kPrefetchBins < bins)
        prefetch((b + kPrefetchBins) / p.pooled_w, (b + kPrefetchBins) % p.pooled_w);
      const int64_t ph = b / p.pooled_w, pw = b % p.pooled_w;
      pool_bin(
          taps.bin(k, ph),
          taps.size(k, ph),
          taps.bin(k, p.pooled_h + pw),
          taps.size(k, p.pooled_h + pw),
          pixel,
          s.bins.data() + b * kChannelBlock);
    }
  }

  // Pools RoI k from a packed block, prefetching bins' pixels ahead: the block lives in
  // L3, and without prefetching every tap would wait out a cache miss.
  void pool_roi_packed(int64_t k, const acc_t* block, int64_t width, Scratch& s) const {
    auto pixel = [block, width](int64_t y, int64_t x, int) { return block + (y * width + x) * kChannelBlock; };
    auto prefetch = [&](int64_t ph, int64_t pw) {
      const Tap<acc_t>* rows = taps.bin(k, ph);
      const Tap<acc_t>* cols = taps.bin(k, p.pooled_h + pw);
      const int64_t num_rows = taps.size(k, ph), num_cols = taps.size(k, p.pooled_h + pw);
      for (int64_t i = 0; i < num_rows; ++i) {
        for (int64_t j = 0; j < num_cols; ++j) {
          const acc_t* line = pixel(rows[i].index, cols[j].index, 0);
          for (size_t b = 0; b < kChannelBlock * sizeof(acc_t); b += 64)
            __builtin_prefetch(line + b / sizeof(acc_t));
        }
      }
    };
    pool_roi(k, pixel, prefetch, s);
  }

  // Writes the pooled [bins, kChannelBlock] block of RoI k into the output's
  // [channels, bins] slice, in register-tile transposes where possible: scattered
  // scalar stores would dominate the whole kernel. In float32 the slice (contiguous in
  // the output) is transposed in an L1 scratch and streamed out in whole lines.
  void write_output(int64_t k, int64_t c0, int64_t num_channels, Scratch& s) const {
    const int64_t bins = p.pooled_h * p.pooled_w;
    scalar_t* dst = out + (k * p.channels + c0) * bins;
    if constexpr (std::is_same_v<scalar_t, float>) {
      s.slice.resize(num_channels * bins);
      transpose_bins(s, num_channels, s.slice.data());
      cpu::stream_copy(s.slice.data(), num_channels * bins, dst);
    } else {
      transpose_bins(s, num_channels, dst);
    }
  }

  // dst[c, b] = the pooled bins[b, c] for the block's num_channels channels.
  void transpose_bins(const Scratch& s, int64_t num_channels, scalar_t* dst) const {
    const int64_t bins = p.pooled_h * p.pooled_w;
    int64_t b0 = 0;
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      if (num_channels == kChannelBlock) {
        for (; b0 + kTile <= bins; b0 += kTile) {
          for (int64_t c = 0; c < kChannelBlock; c += kTile) {
            at::vec::transpose_mxn<acc_t, kTile, kTile>(
                s.bins.data() + b0 * kChannelBlock + c, kChannelBlock, dst + c * bins + b0, bins);
          }
        }
      }
    }
    for (int64_t c = 0; c < num_channels; ++c) {
      for (int64_t b = b0; b < bins; ++b)
        dst[c * bins + b] = static_cast<scalar_t>(s.bins[b * kChannelBlock + c]);
    }
  }

  void operator()(const Task& t, Scratch& s) const {
    const Group& g = groups[t.group];
    const LevelView& lv = p.levels[g.level];
    const int64_t num_channels = std::min(kChannelBlock, p.channels - t.channel_begin);
    const scalar_t* image = features[g.level].data_ptr<scalar_t>() + g.image * lv.stride_n;
    if (t.roi < 0) {
      s.packed.resize(lv.height * lv.width * kChannelBlock);
      pack_block(image, lv, t.channel_begin, num_channels, s.packed.data());
      for (int64_t k : g.rois) {
        pool_roi_packed(k, s.packed.data(), lv.width, s);
        write_output(k, t.channel_begin, num_channels, s);
      }
      cpu::stream_fence();
      return;
    }
    // Sparse group: gather each tap's channels from the input in place.
    const scalar_t* base = image + t.channel_begin * lv.stride_c;
    auto pixel = [&lv, base, &s, num_channels](int64_t y, int64_t x, int slot) {
      const scalar_t* src = base + y * lv.stride_h + x * lv.stride_w;
      acc_t* dst = s.gathered[slot];
      for (int64_t c = 0; c < num_channels; ++c)
        dst[c] = static_cast<acc_t>(src[c * lv.stride_c]);
      return static_cast<const acc_t*>(dst);
    };
    pool_roi(t.roi, pixel, [](int64_t, int64_t) {}, s);
    write_output(t.roi, t.channel_begin, num_channels, s);
    cpu::stream_fence();
  }
};

template <typename scalar_t>
void forward_impl(
    at::TensorList features,
    const at::Tensor& rois,
    const int64_t* level_of,
    const Problem& p,
    at::Tensor& output) {
  using acc_t = at::opmath_type<scalar_t>;
  const RoITaps<acc_t> taps = compute_taps<scalar_t, acc_t>(rois, level_of, p);
  const std::vector<Group> groups = make_groups(rois, level_of, taps, p);
  const int64_t bins = p.pooled_h * p.pooled_w;
  std::vector<Task> tasks;
  for (int64_t gi = 0; gi < static_cast<int64_t>(groups.size()); ++gi) {
    const Group& g = groups[gi];
    const LevelView& lv = p.levels[g.level];
    for (int64_t c0 = 0; c0 < p.channels; c0 += kChannelBlock) {
      if (g.packed) {
        tasks.push_back({gi, c0, -1, lv.height * lv.width + g.taps_per_channel});
      } else {
        for (int64_t k : g.rois)
          tasks.push_back({gi, c0, k, bins});
      }
    }
  }
  ForwardBody<scalar_t> body{features, groups, taps, p, output.data_ptr<scalar_t>()};
  run_tasks(tasks, body);
}

template <typename acc_t>
struct BackwardScratch {
  std::vector<acc_t> packed, grad;
};

// Float and double only: reduced-precision gradients are computed in float32.
template <typename scalar_t>
struct BackwardBody {
  using Scratch = BackwardScratch<scalar_t>;
  const std::vector<Group>& groups;
  const RoITaps<scalar_t>& taps;
  const Problem& p;
  const scalar_t* grad_out;
  std::vector<at::Tensor>& grads;

  // Gradient of RoI k for one channel block as [bins, kChannelBlock], zero-padded.
  const scalar_t* gather_grad(int64_t k, int64_t c0, int64_t num_channels, Scratch& s) const {
    const int64_t bins = p.pooled_h * p.pooled_w;
    s.grad.assign(bins * kChannelBlock, scalar_t(0));
    const scalar_t* src = grad_out + (k * p.channels + c0) * bins;
    for (int64_t c = 0; c < num_channels; ++c) {
      for (int64_t b = 0; b < bins; ++b)
        s.grad[b * kChannelBlock + c] = src[c * bins + b];
    }
    return s.grad.data();
  }

  void operator()(const Task& t, Scratch& s) const {
    const Group& g = groups[t.group];
    const LevelView& lv = p.levels[g.level];
    const int64_t h = lv.height, w = lv.width, c0 = t.channel_begin;
    const int64_t num_channels = std::min(kChannelBlock, p.channels - c0);
    scalar_t* image = grads[g.level].data_ptr<scalar_t>() + g.image * lv.stride_n;
    if (g.packed) {
      s.packed.assign(h * w * kChannelBlock, scalar_t(0));
      for (int64_t k : g.rois) {
        const scalar_t* gk = gather_grad(k, c0, num_channels, s);
        for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
          for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
            scatter_bin(
                taps.bin(k, ph),
                taps.size(k, ph),
                taps.bin(k, p.pooled_h + pw),
                taps.size(k, p.pooled_h + pw),
                gk + (ph * p.pooled_w + pw) * kChannelBlock,
                s.packed.data(),
                w);
          }
        }
      }
      unpack_block(s.packed.data(), lv, c0, num_channels, image);
      return;
    }
    // Few taps: scatter straight into this task's own channels of the gradient.
    scalar_t* slice = image + c0 * lv.stride_c;
    if (lv.stride_c == 1) {
      for (int64_t i = 0; i < h * w; ++i)
        std::fill(slice + i * lv.stride_w, slice + i * lv.stride_w + num_channels, scalar_t(0));
    } else {
      std::fill(slice, slice + num_channels * h * w, scalar_t(0));
    }
    for (int64_t k : g.rois) {
      const scalar_t* gk = gather_grad(k, c0, num_channels, s);
      for (int64_t ph = 0; ph < p.pooled_h; ++ph) {
        const Tap<scalar_t>* rows = taps.bin(k, ph);
        for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
          const Tap<scalar_t>* cols = taps.bin(k, p.pooled_h + pw);
          const scalar_t* gb = gk + (ph * p.pooled_w + pw) * kChannelBlock;
          for (int64_t i = 0; i < taps.size(k, ph); ++i) {
            for (int64_t j = 0; j < taps.size(k, p.pooled_h + pw); ++j) {
              const scalar_t wt = rows[i].weight * cols[j].weight;
              scalar_t* dst = slice + rows[i].index * lv.stride_h + cols[j].index * lv.stride_w;
              for (int64_t c = 0; c < num_channels; ++c)
                dst[c * lv.stride_c] += wt * gb[c];
            }
          }
        }
      }
    }
  }
};

// grads[l] is an NCHW- or channels-last-contiguous [N, C, H_l, W_l] tensor, described
// by p.levels[l]; every element is written.
template <typename scalar_t>
void backward_impl(
    const at::Tensor& grad,
    const at::Tensor& rois,
    const int64_t* level_of,
    const Problem& p,
    std::vector<at::Tensor>& grads) {
  const RoITaps<scalar_t> taps = compute_taps<scalar_t, scalar_t>(rois, level_of, p);
  const std::vector<Group> groups = make_groups(rois, level_of, taps, p);
  std::vector<Task> tasks;
  for (int64_t gi = 0; gi < static_cast<int64_t>(groups.size()); ++gi) {
    const LevelView& lv = p.levels[groups[gi].level];
    for (int64_t c0 = 0; c0 < p.channels; c0 += kChannelBlock) {
      tasks.push_back({gi, c0, -1, lv.height * lv.width + groups[gi].taps_per_channel});
    }
  }
  BackwardBody<scalar_t> body{groups, taps, p, grad.data_ptr<scalar_t>(), grads};
  run_tasks(tasks, body);
}

Problem make_problem(
    int64_t batch,
    int64_t channels,
    int64_t pooled_h,
    int64_t pooled_w,
    int64_t sampling_ratio,
    bool aligned) {
  Problem p;
  p.batch = batch;
  p.channels = channels;
  p.pooled_h = pooled_h;
  p.pooled_w = pooled_w;
  p.sampling_ratio = sampling_ratio;
  p.aligned = aligned;
  return p;
}

LevelView level_view(const at::Tensor& f, double scale) {
  return {f.size(2), f.size(3), f.stride(0), f.stride(1), f.stride(2), f.stride(3), scale};
}

// Validates the RoI values (and levels) and returns the levels' data, or nullptr.
const int64_t* checked_levels(const at::Tensor& rois, const at::Tensor* levels, const Problem& p) {
  const int64_t* level_of = levels ? levels->data_ptr<int64_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rois.scalar_type(), "roi_align_check", [&] {
    check_roi_values<scalar_t>(rois, level_of, p.batch, static_cast<int64_t>(p.levels.size()));
  });
  return level_of;
}

at::Tensor pyramid_forward(
    at::TensorList features,
    const at::Tensor& rois_in,
    const at::Tensor* levels_in,
    at::ArrayRef<double> spatial_scales,
    int64_t pooled_h,
    int64_t pooled_w,
    int64_t sampling_ratio,
    bool aligned) {
  Problem p = make_problem(features[0].size(0), features[0].size(1), pooled_h, pooled_w, sampling_ratio, aligned);
  for (size_t l = 0; l < features.size(); ++l) {
    p.levels.push_back(level_view(features[l], spatial_scales[l]));
  }
  const at::Tensor rois = rois_in.contiguous();
  at::Tensor levels;
  if (levels_in) {
    levels = levels_in->contiguous();
  }
  const int64_t* level_of = checked_levels(rois, levels_in ? &levels : nullptr, p);
  at::Tensor output = cpu::empty_output({rois.size(0), p.channels, pooled_h, pooled_w}, features[0].options());
  if (output.numel() == 0) {
    return output;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rois.scalar_type(), "roi_align_forward", [&] {
    forward_impl<scalar_t>(features, rois, level_of, p, output);
  });
  return output;
}

std::vector<at::Tensor> pyramid_backward(
    const at::Tensor& grad_in,
    const at::Tensor& rois_in,
    const at::Tensor* levels_in,
    at::ArrayRef<double> spatial_scales,
    int64_t pooled_h,
    int64_t pooled_w,
    int64_t batch,
    int64_t channels,
    at::ArrayRef<int64_t> heights,
    at::ArrayRef<int64_t> widths,
    int64_t sampling_ratio,
    bool aligned,
    bool channels_last) {
  if (grad_in.scalar_type() == at::kHalf || grad_in.scalar_type() == at::kBFloat16) {
    // Accumulate reduced-precision gradients in float32, then round once.
    std::vector<at::Tensor> grads = pyramid_backward(
        grad_in.to(at::kFloat),
        rois_in.to(at::kFloat),
        levels_in,
        spatial_scales,
        pooled_h,
        pooled_w,
        batch,
        channels,
        heights,
        widths,
        sampling_ratio,
        aligned,
        channels_last);
    for (at::Tensor& g : grads)
      g = g.to(grad_in.scalar_type());
    return grads;
  }
  Problem p = make_problem(batch, channels, pooled_h, pooled_w, sampling_ratio, aligned);
  std::vector<at::Tensor> grads;
  const at::MemoryFormat format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  for (size_t l = 0; l < heights.size(); ++l) {
    grads.push_back(cpu::empty_output({batch, channels, heights[l], widths[l]}, grad_in.options(), format));
    p.levels.push_back(level_view(grads.back(), spatial_scales[l]));
  }
  const at::Tensor rois = rois_in.contiguous();
  at::Tensor levels;
  if (levels_in) {
    levels = levels_in->contiguous();
  }
  const int64_t* level_of = checked_levels(rois, levels_in ? &levels : nullptr, p);
  if (batch * channels == 0) {
    return grads;
  }
  const at::Tensor grad = grad_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES(
      grad.scalar_type(), "roi_align_backward", [&] { backward_impl<scalar_t>(grad, rois, level_of, p, grads); });
  return grads;
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  EntryPoints<&pyramid_forward, &pyramid_backward>::register_kernels(m);
}

} // namespace roi_align
} // namespace maskx
