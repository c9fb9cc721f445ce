// CUDA kernels of maskx::paste_masks and maskx::paste_masks_rle.
//
// paste_masks: the output starts zeroed; a block takes one mask and a band of image rows,
// and its threads take the band's pixels inside the mask's box, each computing its value
// with the same per-pixel math as the CPU kernel (ops/paste_masks_common.h: the box
// geometry, ATen's taps and fused multiply-adds), so results match the CPU bit for bit.
// Box values are checked by the Python face before the call.
// paste_masks_rle: the boxes' geometry is computed on the host (one copy of the boxes), a
// kernel thresholds every box's pixels into a packed buffer of crops, and the crops are
// copied to the host, where their runs are encoded (ops/paste_masks_checks.cpp); the
// image-sized masks are never built.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "ops/paste_masks_checks.h"
#include "ops/paste_masks_common.h"

namespace maskx {
namespace paste_masks {
namespace {

constexpr int kThreads = 256;
// Image rows per block of the dense kernel.
constexpr int64_t kRowsPerBlock = 8;
constexpr int64_t kMaxGridY = 65535;

template <typename T, typename scalar_t>
__device__ T
pixel_value(const scalar_t* mask, const Geometry& g, int64_t y, int64_t x, int64_t m_h, int64_t m_w, int64_t padding) {
  const int64_t in_h = m_h + 2 * padding, in_w = m_w + 2 * padding;
  return resized_pixel<T>(g, y - g.box_y0, x - g.box_x0, in_h, in_w, [&](int64_t i, int64_t j) {
    return padded_sample<T>(mask, m_h, m_w, padding, i, j);
  });
}

// Grid (N, bands of kRowsPerBlock rows; a block takes further bands when the grid is
// capped). `out` is zero outside the boxes already.
template <typename scalar_t, typename box_t, typename out_t>
__global__ void paste_kernel(
    const scalar_t* __restrict__ masks,
    const box_t* __restrict__ boxes,
    int64_t m_h,
    int64_t m_w,
    int64_t padding,
    box_t scale,
    int64_t height,
    int64_t width,
    at::opmath_type<scalar_t> threshold,
    out_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  const int64_t n = blockIdx.x;
  const Geometry g = box_geometry<box_t>(boxes + 4 * n, scale, height, width);
  if (g.empty())
    return;
  const scalar_t* mask = masks + n * m_h * m_w;
  const int64_t cols = g.x_end - g.x_begin;
  for (int64_t band = blockIdx.y; band * kRowsPerBlock < height; band += gridDim.y) {
    const int64_t ya = max64(band * kRowsPerBlock, g.y_begin);
    const int64_t yb = min64((band + 1) * kRowsPerBlock, g.y_end);
    if (ya >= yb)
      continue;
    const int64_t pixels = (yb - ya) * cols;
    for (int64_t p = threadIdx.x; p < pixels; p += blockDim.x) {
      const int64_t y = ya + p / cols, x = g.x_begin + p % cols;
      const T v = pixel_value<T>(mask, g, y, x, m_h, m_w, padding);
      out_t* dst = out + (n * height + y) * width + x;
      if constexpr (std::is_same<out_t, bool>::value) {
        *dst = above<scalar_t>(v, threshold);
      } else {
        *dst = static_cast<out_t>(v);
      }
    }
  }
}

// Grid (N, blocks per mask): mask n's thresholded box pixels, row-major, at crops +
// offsets[n]. geo is [N, 8] int64 (Geometry's fields in order).
template <typename scalar_t>
__global__ void crop_kernel(
    const scalar_t* __restrict__ masks,
    const int64_t* __restrict__ geo,
    const int64_t* __restrict__ offsets,
    int64_t m_h,
    int64_t m_w,
    int64_t padding,
    at::opmath_type<scalar_t> threshold,
    uint8_t* __restrict__ crops) {
  using T = at::opmath_type<scalar_t>;
  const int64_t n = blockIdx.x;
  const int64_t* f = geo + 8 * n;
  Geometry g;
  g.box_x0 = f[0];
  g.box_y0 = f[1];
  g.width = f[2];
  g.height = f[3];
  g.x_begin = f[4];
  g.x_end = f[5];
  g.y_begin = f[6];
  g.y_end = f[7];
  if (g.empty())
    return;
  const scalar_t* mask = masks + n * m_h * m_w;
  const int64_t cols = g.x_end - g.x_begin;
  const int64_t pixels = (g.y_end - g.y_begin) * cols;
  uint8_t* crop = crops + offsets[n];
  for (int64_t p = blockIdx.y * blockDim.x + threadIdx.x; p < pixels; p += int64_t(gridDim.y) * blockDim.x) {
    const int64_t y = g.y_begin + p / cols, x = g.x_begin + p % cols;
    crop[p] = above<scalar_t>(pixel_value<T>(mask, g, y, x, m_h, m_w, padding), threshold) ? 1 : 0;
  }
}

at::Tensor paste_masks_forward_kernel(
    const at::Tensor& masks,
    const at::Tensor& boxes,
    int64_t height,
    int64_t width,
    int64_t padding,
    std::optional<double> threshold) {
  check_args("paste_masks", masks, boxes, height, width, padding, threshold);
  const c10::cuda::CUDAGuard guard(masks.device());
  const at::TensorOptions options = threshold.has_value() ? masks.options().dtype(at::kBool) : masks.options();
  at::Tensor output = at::zeros({masks.size(0), height, width}, options);
  if (output.numel() == 0)
    return output;
  const at::Tensor m = masks.contiguous(), b = boxes.contiguous();
  const int64_t bands = (height + kRowsPerBlock - 1) / kRowsPerBlock;
  const dim3 grid(masks.size(0), std::min(bands, kMaxGridY));
  const double scale = box_scale(masks.size(2), padding);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, m.scalar_type(), "paste_masks_cuda", [&] {
    using mask_t = scalar_t;
    using T = at::opmath_type<mask_t>;
    const T t = rounded_threshold<mask_t, T>(threshold.value_or(0.0));
    AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "paste_masks_cuda_boxes", [&] {
      using box_t = scalar_t;
      if (threshold.has_value()) {
        paste_kernel<mask_t, box_t, bool><<<grid, kThreads, 0, stream>>>(
            m.data_ptr<mask_t>(),
            b.data_ptr<box_t>(),
            m.size(1),
            m.size(2),
            padding,
            static_cast<box_t>(scale),
            height,
            width,
            t,
            output.data_ptr<bool>());
      } else {
        paste_kernel<mask_t, box_t, mask_t><<<grid, kThreads, 0, stream>>>(
            m.data_ptr<mask_t>(),
            b.data_ptr<box_t>(),
            m.size(1),
            m.size(2),
            padding,
            static_cast<box_t>(scale),
            height,
            width,
            t,
            output.data_ptr<mask_t>());
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return output;
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
  const c10::cuda::CUDAGuard guard(masks.device());
  const at::Tensor host_boxes = boxes.cpu();
  check_box_values(op, host_boxes);
  const int64_t n = masks.size(0);
  const std::vector<Geometry> geo = geometries(host_boxes, masks.size(2), padding, height, width);
  at::Tensor fields = at::empty({n, 8}, at::TensorOptions().dtype(at::kLong));
  at::Tensor offsets = at::empty({n + 1}, at::TensorOptions().dtype(at::kLong));
  int64_t* f = fields.data_ptr<int64_t>();
  int64_t* o = offsets.data_ptr<int64_t>();
  o[0] = 0;
  int64_t largest = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Geometry& g = geo[i];
    const int64_t values[8] = {g.box_x0, g.box_y0, g.width, g.height, g.x_begin, g.x_end, g.y_begin, g.y_end};
    std::copy(values, values + 8, f + 8 * i);
    const int64_t area = g.empty() ? 0 : (g.x_end - g.x_begin) * (g.y_end - g.y_begin);
    o[i + 1] = o[i] + area;
    largest = std::max(largest, area);
  }
  at::Tensor crops = at::empty({o[n]}, masks.options().dtype(at::kByte));
  if (o[n] > 0) {
    const at::Tensor m = masks.contiguous();
    const at::Tensor device_fields = fields.to(masks.device()), device_offsets = offsets.to(masks.device());
    const dim3 grid(n, std::min<int64_t>((largest + kThreads - 1) / kThreads, kMaxGridY));
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, m.scalar_type(), "paste_masks_rle_cuda", [&] {
      using T = at::opmath_type<scalar_t>;
      crop_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(
          m.data_ptr<scalar_t>(),
          device_fields.data_ptr<int64_t>(),
          device_offsets.data_ptr<int64_t>(),
          m.size(1),
          m.size(2),
          padding,
          rounded_threshold<scalar_t, T>(threshold),
          crops.data_ptr<uint8_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  const at::Tensor host_crops = crops.cpu();
  const uint8_t* c = host_crops.data_ptr<uint8_t>();
  std::vector<std::string> strings(n);
  at::parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      strings[i] = encode_rle(c + o[i], geo[i], height, width);
  });
  return pack_strings(strings);
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  m.impl("paste_masks", &paste_masks_forward_kernel);
  m.impl("paste_masks_rle", &paste_masks_rle_forward_kernel);
}

} // namespace paste_masks
} // namespace maskx
