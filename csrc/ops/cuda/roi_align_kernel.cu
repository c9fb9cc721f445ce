// CUDA kernels of maskx::roi_align and maskx::multi_scale_roi_align (the single-level op
// is the one-level case of the pyramid op).
//
// Forward: one thread per output element (RoI, channel, bin row, bin column), reading the
// input through its strides (NCHW, channels-last or any other layout, no copy). Threads
// next to each other take the next bin column, or the next channel when channels are the
// input's innermost dimension, so that a warp's reads share cache lines. Index math is
// 32-bit whenever the output allows it (64-bit division costs many instructions). A launch
// sees up to kMaxLevels pyramid levels in a struct passed by value; larger pyramids take
// one launch per block of levels.
//
// Backward: by default one thread per gradient element, atomically adding its samples'
// weighted gradient into a float accumulation buffer (float32 for half and bfloat16).
// Under torch.use_deterministic_algorithms(True) every thread instead owns one gradient
// pixel for kChannelChunk channels and sums, in RoI index order, the contributions of the
// RoIs of its image and level, with the separable row and column weights of
// roi_align_common.h. RoIs are grouped by (level, image) with a stable sort on the device
// (no host synchronisation) and nothing larger than the gradient is allocated.
//
// RoI values are not checked here (that would synchronise; the Python wrapper checks them
// eagerly): a RoI with a batch index that is not an integer in [0, N), a level out of
// range or a non-finite coordinate pools to zero and receives no gradient.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "ops/roi_align_common.h"
#include "ops/roi_align_entry_points.h"

namespace maskx {
namespace roi_align {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;
constexpr int kMaxLevels = 8;
constexpr int kChannelChunk = 8;

template <typename T>
struct LevelView {
  T* data;
  int64_t height, width;
  int64_t stride_n, stride_c, stride_h, stride_w;
  double scale;
};

// Levels [first, first + count) of a pyramid of `total` levels.
template <typename T>
struct LevelBlock {
  LevelView<T> levels[kMaxLevels];
  int64_t first, count, total;
};

struct PoolArgs {
  int64_t batch, channels, pooled_h, pooled_w, sampling_ratio;
  bool aligned;
};

int64_t num_blocks(int64_t work) {
  return std::min((work + kThreads - 1) / kThreads, kMaxBlocks);
}

#define MASKX_GRID_STRIDE_LOOP(index_t, i, n)                                            \
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<index_t>(blockDim.x) * gridDim.x)

// Calls f with an int32_t when every index a grid-stride loop over `total` elements
// reaches (up to total plus one grid) and every pixel row or column index below
// `largest_side` fits one, else with an int64_t.
template <typename F>
void with_index_type(int64_t total, int64_t largest_side, const F& f) {
  if (total <= std::numeric_limits<int32_t>::max() - kThreads * kMaxBlocks &&
      largest_side <= std::numeric_limits<int32_t>::max()) {
    f(int32_t{});
  } else {
    f(int64_t{});
  }
}

// The longest row or column of the levels [N, C, H, W].
int64_t largest_side(at::TensorList levels) {
  int64_t side = 0;
  for (const at::Tensor& level : levels)
    side = std::max({side, level.size(2), level.size(3)});
  return side;
}

// An output element's (RoI, channel, bin row, bin column), decoded from its position in
// the launch: bin column fastest, or channel fastest.
template <typename index_t>
struct OutputIndex {
  index_t k, c, ph, pw;
};

template <typename index_t>
__device__ __forceinline__ OutputIndex<index_t> output_index(
    index_t i,
    index_t channels,
    index_t pooled_h,
    index_t pooled_w,
    bool channels_fastest) {
  OutputIndex<index_t> o;
  if (channels_fastest) {
    o.c = i % channels;
    i /= channels;
    o.pw = i % pooled_w;
    i /= pooled_w;
    o.ph = i % pooled_h;
    o.k = i / pooled_h;
  } else {
    o.pw = i % pooled_w;
    i /= pooled_w;
    o.ph = i % pooled_h;
    i /= pooled_h;
    o.c = i % channels;
    o.k = i / channels;
  }
  return o;
}

// The launch's index of RoI k's level, or -1 when the RoI belongs to another launch's
// block of levels or to none (level out of range).
template <typename T>
__device__ __forceinline__ int64_t local_level(const int64_t* level_of, int64_t k, const LevelBlock<T>& block) {
  const int64_t level = level_of != nullptr ? level_of[k] : 0;
  return level >= block.first && level < block.first + block.count ? level - block.first : -1;
}

// Whether this launch writes the (zero) output of a RoI whose level is out of range.
template <typename T>
__device__ __forceinline__ bool owns_invalid_level(const int64_t* level_of, int64_t k, const LevelBlock<T>& block) {
  const int64_t level = level_of != nullptr ? level_of[k] : 0;
  return block.first == 0 && (level < 0 || level >= block.total);
}

// Decodes one RoI row (batch index, x1, y1, x2, y2). Returns false for a RoI that pools
// to zero: a batch index outside [0, batch) or not an integer, a non-finite coordinate,
// or an empty feature map.
template <typename acc_t, typename scalar_t>
__device__ __forceinline__ bool decode_roi(
    const scalar_t* roi,
    int64_t batch,
    int64_t height,
    int64_t width,
    double scale,
    const PoolArgs& a,
    int64_t& image,
    RoIGeometry<acc_t>& g) {
  const acc_t index = static_cast<acc_t>(roi[0]);
  if (!(index >= acc_t(0)) || index >= static_cast<acc_t>(batch) || floor(index) != index) {
    return false;
  }
  const acc_t x1 = static_cast<acc_t>(roi[1]), y1 = static_cast<acc_t>(roi[2]);
  const acc_t x2 = static_cast<acc_t>(roi[3]), y2 = static_cast<acc_t>(roi[4]);
  if (!(isfinite(x1) && isfinite(y1) && isfinite(x2) && isfinite(y2)) || height <= 0 || width <= 0) {
    return false;
  }
  image = static_cast<int64_t>(index);
  g = roi_geometry<acc_t>(
      x1, y1, x2, y2, static_cast<acc_t>(scale), a.pooled_h, a.pooled_w, a.sampling_ratio, a.aligned);
  return true;
}

template <typename scalar_t, typename acc_t, typename index_t>
__device__ acc_t pool_bin(
    const LevelView<const scalar_t>& lv,
    const scalar_t* roi,
    int64_t c,
    int64_t ph,
    int64_t pw,
    const PoolArgs& a) {
  int64_t image;
  RoIGeometry<acc_t> g;
  if (!decode_roi<acc_t>(roi, a.batch, lv.height, lv.width, lv.scale, a, image, g)) {
    return acc_t(0);
  }
  const scalar_t* plane = lv.data + image * lv.stride_n + c * lv.stride_c;
  acc_t sum = acc_t(0);
  const index_t height = static_cast<index_t>(lv.height), width = static_cast<index_t>(lv.width);
  for (int64_t iy = 0; iy < g.grid_h; ++iy) {
    AxisTaps<acc_t, index_t> ty;
    if (!axis_taps(sample_coord(g.start_h, g.bin_h, ph, iy, g.grid_h), height, ty)) {
      continue;
    }
    const scalar_t* row_low = plane + ty.low * lv.stride_h;
    const scalar_t* row_high = plane + ty.high * lv.stride_h;
    for (int64_t ix = 0; ix < g.grid_w; ++ix) {
      AxisTaps<acc_t, index_t> tx;
      if (!axis_taps(sample_coord(g.start_w, g.bin_w, pw, ix, g.grid_w), width, tx)) {
        continue;
      }
      const int64_t xl = tx.low * lv.stride_w, xh = tx.high * lv.stride_w;
      sum += ty.w_low * (tx.w_low * static_cast<acc_t>(row_low[xl]) + tx.w_high * static_cast<acc_t>(row_low[xh])) +
          ty.w_high * (tx.w_low * static_cast<acc_t>(row_high[xl]) + tx.w_high * static_cast<acc_t>(row_high[xh]));
    }
  }
  return sum * g.inv_count;
}

template <typename scalar_t, typename index_t>
__global__ void roi_align_forward_kernel(
    LevelBlock<const scalar_t> block,
    const scalar_t* __restrict__ rois,
    const int64_t* __restrict__ level_of,
    PoolArgs a,
    index_t total,
    bool channels_fastest,
    scalar_t* __restrict__ output) {
  using acc_t = at::opmath_type<scalar_t>;
  const index_t channels = a.channels, pooled_h = a.pooled_h, pooled_w = a.pooled_w;
  MASKX_GRID_STRIDE_LOOP(index_t, i, total) {
    const OutputIndex<index_t> o = output_index(i, channels, pooled_h, pooled_w, channels_fastest);
    const index_t out = ((o.k * channels + o.c) * pooled_h + o.ph) * pooled_w + o.pw;
    const int64_t l = local_level(level_of, o.k, block);
    if (l >= 0) {
      output[out] = static_cast<scalar_t>(
          pool_bin<scalar_t, acc_t, index_t>(block.levels[l], rois + o.k * 5, o.c, o.ph, o.pw, a));
    } else if (owns_invalid_level(level_of, o.k, block)) {
      output[out] = scalar_t(0);
    }
  }
}

// grads: contiguous [N, C, H_l, W_l] accumulation buffers, zero-initialised.
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void roi_align_backward_atomic_kernel(
    LevelBlock<acc_t> block,
    const scalar_t* __restrict__ grad,
    const scalar_t* __restrict__ rois,
    const int64_t* __restrict__ level_of,
    PoolArgs a,
    index_t total) {
  MASKX_GRID_STRIDE_LOOP(index_t, i, total) {
    const OutputIndex<index_t> o = output_index<index_t>(i, a.channels, a.pooled_h, a.pooled_w, false);
    const index_t k = o.k, c = o.c, ph = o.ph, pw = o.pw;
    const int64_t l = local_level(level_of, k, block);
    if (l < 0) {
      continue;
    }
    const LevelView<acc_t>& lv = block.levels[l];
    int64_t image;
    RoIGeometry<acc_t> g;
    if (!decode_roi<acc_t>(rois + k * 5, a.batch, lv.height, lv.width, lv.scale, a, image, g)) {
      continue;
    }
    const acc_t value = static_cast<acc_t>(grad[i]) * g.inv_count;
    acc_t* plane = lv.data + image * lv.stride_n + c * lv.stride_c;
    const index_t height = static_cast<index_t>(lv.height), width = static_cast<index_t>(lv.width);
    for (int64_t iy = 0; iy < g.grid_h; ++iy) {
      AxisTaps<acc_t, index_t> ty;
      if (!axis_taps(sample_coord(g.start_h, g.bin_h, ph, iy, g.grid_h), height, ty)) {
        continue;
      }
      for (int64_t ix = 0; ix < g.grid_w; ++ix) {
        AxisTaps<acc_t, index_t> tx;
        if (!axis_taps(sample_coord(g.start_w, g.bin_w, pw, ix, g.grid_w), width, tx)) {
          continue;
        }
        acc_t* row_low = plane + ty.low * lv.stride_h;
        acc_t* row_high = plane + ty.high * lv.stride_h;
        const int64_t xl = tx.low * lv.stride_w, xh = tx.high * lv.stride_w;
        atomicAdd(row_low + xl, value * ty.w_low * tx.w_low);
        atomicAdd(row_low + xh, value * ty.w_low * tx.w_high);
        atomicAdd(row_high + xl, value * ty.w_high * tx.w_low);
        atomicAdd(row_high + xh, value * ty.w_high * tx.w_high);
      }
    }
  }
}

// Whether some sample of the bins [start, start + bins * bin] can have a bilinear tap on
// pixel `index`. Samples lie within the span up to rounding and a tap is at most one pixel
// from its (clamped) sample, so a two-pixel margin is conservative.
template <typename acc_t>
__device__ __forceinline__ bool span_reaches(acc_t start, acc_t bin, int64_t bins, int64_t index) {
  const acc_t end = start + static_cast<acc_t>(bins) * bin;
  const acc_t lo = start < end ? start : end, hi = start < end ? end : start;
  const acc_t p = static_cast<acc_t>(index);
  return p + acc_t(2) >= lo && p - acc_t(2) <= hi;
}

// Deterministic backward of one level: the thread of (image, channel chunk, y, x) sums
// the contributions of the image's RoIs on this level in RoI index order. `order` lists
// RoIs grouped by image (index order within a group); the group of image n is
// order[offsets[n], offsets[n + 1]).
template <typename scalar_t, typename index_t>
__global__ void roi_align_backward_gather_kernel(
    const scalar_t* __restrict__ grad,
    const scalar_t* __restrict__ rois,
    const int64_t* __restrict__ order,
    const int64_t* __restrict__ offsets,
    int64_t height,
    int64_t width,
    double scale,
    PoolArgs a,
    index_t total,
    scalar_t* __restrict__ grad_input) {
  using acc_t = at::opmath_type<scalar_t>;
  const index_t chunks = (a.channels + kChannelChunk - 1) / kChannelChunk;
  const int64_t bins = a.pooled_h * a.pooled_w;
  MASKX_GRID_STRIDE_LOOP(index_t, i, total) {
    index_t rest = i;
    const int64_t x = rest % static_cast<index_t>(width);
    rest /= static_cast<index_t>(width);
    const int64_t y = rest % static_cast<index_t>(height);
    rest /= static_cast<index_t>(height);
    const int64_t c0 = static_cast<int64_t>(rest % chunks) * kChannelChunk;
    const int64_t n = rest / chunks;
    const int64_t num_channels = a.channels - c0 < kChannelChunk ? a.channels - c0 : kChannelChunk;
    acc_t acc[kChannelChunk];
#pragma unroll
    for (int j = 0; j < kChannelChunk; ++j)
      acc[j] = acc_t(0);
    for (int64_t r = offsets[n]; r < offsets[n + 1]; ++r) {
      const int64_t k = order[r];
      int64_t image;
      RoIGeometry<acc_t> g;
      if (!decode_roi<acc_t>(rois + k * 5, a.batch, height, width, scale, a, image, g) ||
          !span_reaches(g.start_h, g.bin_h, a.pooled_h, y) || !span_reaches(g.start_w, g.bin_w, a.pooled_w, x)) {
        continue;
      }
      const scalar_t* grad_k = grad + (k * a.channels + c0) * bins;
      for (int64_t ph = 0; ph < a.pooled_h; ++ph) {
        if (!span_reaches(g.start_h + static_cast<acc_t>(ph) * g.bin_h, g.bin_h, 1, y)) {
          continue;
        }
        const acc_t wy = axis_weight(g.start_h, g.bin_h, ph, g.grid_h, height, y) * g.inv_count;
        if (wy == acc_t(0)) {
          continue;
        }
        for (int64_t pw = 0; pw < a.pooled_w; ++pw) {
          if (!span_reaches(g.start_w + static_cast<acc_t>(pw) * g.bin_w, g.bin_w, 1, x)) {
            continue;
          }
          const acc_t w = wy * axis_weight(g.start_w, g.bin_w, pw, g.grid_w, width, x);
          if (w == acc_t(0)) {
            continue;
          }
          const scalar_t* grad_bin = grad_k + ph * a.pooled_w + pw;
#pragma unroll
          for (int j = 0; j < kChannelChunk; ++j) {
            if (j < num_channels) {
              acc[j] += w * static_cast<acc_t>(grad_bin[j * bins]);
            }
          }
        }
      }
    }
    scalar_t* out = grad_input + ((n * a.channels + c0) * height + y) * width + x;
#pragma unroll
    for (int j = 0; j < kChannelChunk; ++j) {
      if (j < num_channels) {
        out[j * height * width] = static_cast<scalar_t>(acc[j]);
      }
    }
  }
}

template <typename T>
LevelView<T> level_view(
    T* data,
    int64_t height,
    int64_t width,
    int64_t stride_n,
    int64_t stride_c,
    int64_t stride_h,
    int64_t stride_w,
    double scale) {
  return {data, height, width, stride_n, stride_c, stride_h, stride_w, scale};
}

// Runs `launch(block)` for each block of up to kMaxLevels consecutive levels.
template <typename T, typename MakeView, typename Launch>
void for_level_blocks(int64_t num_levels, const MakeView& make_view, const Launch& launch) {
  for (int64_t first = 0; first < num_levels; first += kMaxLevels) {
    LevelBlock<T> block{};
    block.first = first;
    block.count = std::min<int64_t>(kMaxLevels, num_levels - first);
    block.total = num_levels;
    for (int64_t l = 0; l < block.count; ++l)
      block.levels[l] = make_view(first + l);
    launch(block);
  }
}

// Stable-sorts the RoIs by (level, image) on the device; RoIs that pool to zero go last.
// Returns (order, offsets): group level * batch + image is order[offsets[g], offsets[g + 1]).
std::pair<at::Tensor, at::Tensor> group_rois(
    const at::Tensor& rois,
    const at::Tensor* levels,
    int64_t batch,
    int64_t num_levels) {
  const at::Tensor index = rois.select(1, 0);
  at::Tensor valid = (index == index.floor()) & (index >= 0) & (index < static_cast<double>(batch)) &
      at::isfinite(rois.slice(1, 1, 5)).all(1);
  at::Tensor level = at::zeros({rois.size(0)}, rois.options().dtype(at::kLong));
  if (levels != nullptr) {
    level = *levels;
    valid = valid & (level >= 0) & (level < num_levels);
  }
  const int64_t num_groups = num_levels * batch;
  const at::Tensor key = at::where(valid, level * batch + index.to(at::kLong), at::full_like(level, num_groups));
  const auto sorted = at::sort(key, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor offsets = at::searchsorted(std::get<0>(sorted), at::arange(num_groups + 1, level.options()));
  return {std::get<1>(sorted), offsets};
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
  const c10::cuda::CUDAGuard guard(features[0].device());
  const PoolArgs a{features[0].size(0), features[0].size(1), pooled_h, pooled_w, sampling_ratio, aligned};
  const at::Tensor rois = rois_in.contiguous();
  const at::Tensor levels = levels_in != nullptr ? levels_in->contiguous() : at::Tensor();
  at::Tensor output = at::empty({rois.size(0), a.channels, pooled_h, pooled_w}, features[0].options());
  const int64_t total = output.numel();
  if (total == 0) {
    return output;
  }
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rois.scalar_type(), "roi_align_forward_cuda", [&] {
    const int64_t* level_of = levels_in != nullptr ? levels.data_ptr<int64_t>() : nullptr;
    auto make_view = [&](int64_t l) {
      const at::Tensor& f = features[l];
      return level_view<const scalar_t>(
          f.data_ptr<scalar_t>(),
          f.size(2),
          f.size(3),
          f.stride(0),
          f.stride(1),
          f.stride(2),
          f.stride(3),
          spatial_scales[l]);
    };
    const bool channels_fastest = features[0].stride(1) == 1 && a.channels > 1;
    with_index_type(total, largest_side(features), [&](auto index) {
      using index_t = decltype(index);
      for_level_blocks<const scalar_t>(
          static_cast<int64_t>(features.size()), make_view, [&](const LevelBlock<const scalar_t>& block) {
            roi_align_forward_kernel<scalar_t, index_t><<<num_blocks(total), kThreads, 0, stream>>>(
                block,
                rois.data_ptr<scalar_t>(),
                level_of,
                a,
                static_cast<index_t>(total),
                channels_fastest,
                output.data_ptr<scalar_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();
          });
    });
  });
  return output;
}

template <typename scalar_t>
void backward_atomic(
    const at::Tensor& grad,
    const at::Tensor& rois,
    const at::Tensor* levels,
    at::ArrayRef<double> spatial_scales,
    const PoolArgs& a,
    std::vector<at::Tensor>& buffers) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t* level_of = levels != nullptr ? levels->data_ptr<int64_t>() : nullptr;
  const int64_t total = grad.numel();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  auto make_view = [&](int64_t l) {
    const at::Tensor& b = buffers[l];
    return level_view<acc_t>(
        b.data_ptr<acc_t>(),
        b.size(2),
        b.size(3),
        b.stride(0),
        b.stride(1),
        b.stride(2),
        b.stride(3),
        spatial_scales[l]);
  };
  with_index_type(total, largest_side(buffers), [&](auto index) {
    using index_t = decltype(index);
    for_level_blocks<acc_t>(static_cast<int64_t>(buffers.size()), make_view, [&](const LevelBlock<acc_t>& block) {
      roi_align_backward_atomic_kernel<scalar_t, acc_t, index_t><<<num_blocks(total), kThreads, 0, stream>>>(
          block, grad.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), level_of, a, static_cast<index_t>(total));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

template <typename scalar_t>
void backward_deterministic(
    const at::Tensor& grad,
    const at::Tensor& rois,
    const at::Tensor* levels,
    at::ArrayRef<double> spatial_scales,
    const PoolArgs& a,
    std::vector<at::Tensor>& grads) {
  const int64_t num_levels = static_cast<int64_t>(grads.size());
  const auto grouped = group_rois(rois, levels, a.batch, num_levels);
  const at::Tensor& order = grouped.first;
  const at::Tensor& offsets = grouped.second;
  const int64_t chunks = (a.channels + kChannelChunk - 1) / kChannelChunk;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (int64_t l = 0; l < num_levels; ++l) {
    const int64_t height = grads[l].size(2), width = grads[l].size(3);
    const int64_t total = a.batch * chunks * height * width;
    if (total == 0) {
      continue;
    }
    with_index_type(total, std::max(height, width), [&](auto index) {
      using index_t = decltype(index);
      roi_align_backward_gather_kernel<scalar_t, index_t><<<num_blocks(total), kThreads, 0, stream>>>(
          grad.data_ptr<scalar_t>(),
          rois.data_ptr<scalar_t>(),
          order.data_ptr<int64_t>(),
          offsets.data_ptr<int64_t>() + l * a.batch,
          height,
          width,
          spatial_scales[l],
          a,
          static_cast<index_t>(total),
          grads[l].data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
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
  const c10::cuda::CUDAGuard guard(grad_in.device());
  const PoolArgs a{batch, channels, pooled_h, pooled_w, sampling_ratio, aligned};
  const at::Tensor grad = grad_in.contiguous();
  const at::Tensor rois = rois_in.contiguous();
  const at::Tensor levels = levels_in != nullptr ? levels_in->contiguous() : at::Tensor();
  const at::Tensor* level_ptr = levels_in != nullptr ? &levels : nullptr;
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  std::vector<at::Tensor> grads;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_align_backward_cuda", [&] {
    if (deterministic) {
      // Every gradient element is written by the thread that owns it.
      for (size_t l = 0; l < heights.size(); ++l) {
        grads.push_back(at::empty({batch, channels, heights[l], widths[l]}, grad.options()));
      }
      backward_deterministic<scalar_t>(grad, rois, level_ptr, spatial_scales, a, grads);
      return;
    }
    // Atomics accumulate in the op math type (float32 for half and bfloat16).
    using acc_t = at::opmath_type<scalar_t>;
    for (size_t l = 0; l < heights.size(); ++l) {
      grads.push_back(
          at::zeros(
              {batch, channels, heights[l], widths[l]}, grad.options().dtype(c10::CppTypeToScalarType<acc_t>::value)));
    }
    if (grad.numel() > 0) {
      backward_atomic<scalar_t>(grad, rois, level_ptr, spatial_scales, a, grads);
    }
    for (at::Tensor& g : grads)
      g = g.to(grad.scalar_type());
  });
  if (channels_last) {
    // The kernels write NCHW; on the GPU one layout copy costs little.
    for (at::Tensor& g : grads)
      g = g.contiguous(at::MemoryFormat::ChannelsLast);
  }
  return grads;
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  EntryPoints<&pyramid_forward, &pyramid_backward>::register_kernels(m);
}

} // namespace roi_align
} // namespace maskx
