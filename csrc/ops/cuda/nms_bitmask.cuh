#pragma once
// Bitmask NMS on CUDA, shared by the nms, batched_nms and multiclass_nms kernels.
//
// Boxes are sorted by decreasing score (a stable sort: ties lower index first, as on the
// CPU). nms_mask_kernel fills a [N, ceil(N / 64)] matrix of 64-bit words: bit k of word
// (i, c) says whether box i (kept) suppresses box 64 c + k, i.e. 64 c + k > i, both
// boxes share a class and iou_above (nms_common.h) holds. Each block compares one tile
// of 64 rows with one tile of 64 columns staged in shared memory. nms_keep_kernel then
// runs the greedy pass on the device in one block, ORing the rows of kept boxes into a
// word-per-tile "removed" set, so the mask never leaves the GPU.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstdint>

#include "ops/nms_checks.h"
#include "ops/nms_common.h"

namespace maskx {
namespace nms {
namespace {

constexpr int kTile = 64; // boxes per mask word
constexpr int kKeepThreads = 256;
constexpr int64_t kMaxSharedRemovedWords = (48 * 1024) / sizeof(uint64_t);

template <typename T>
__global__ void nms_mask_kernel(
    int64_t n,
    int64_t col_blocks,
    const T* __restrict__ boxes,
    const int64_t* __restrict__ classes,
    T threshold,
    uint64_t* __restrict__ mask) {
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  // Only boxes after box i can be suppressed by it: tiles left of the diagonal are unused.
  if (col_block < row_block) {
    return;
  }
  const int row_size = static_cast<int>(min(n - row_block * kTile, int64_t(kTile)));
  const int col_size = static_cast<int>(min(n - col_block * kTile, int64_t(kTile)));
  __shared__ T tile[kTile][5];
  __shared__ int64_t tile_class[kTile];
  const int t = threadIdx.x;
  if (t < col_size) {
    const T* b = boxes + (col_block * kTile + t) * 4;
    tile[t][0] = b[0];
    tile[t][1] = b[1];
    tile[t][2] = b[2];
    tile[t][3] = b[3];
    tile[t][4] = box_area(b[0], b[1], b[2], b[3]);
    tile_class[t] = classes != nullptr ? classes[col_block * kTile + t] : 0;
  }
  __syncthreads();
  if (t >= row_size) {
    return;
  }
  const int64_t i = row_block * kTile + t;
  const T* a = boxes + i * 4;
  const T ax1 = a[0], ay1 = a[1], ax2 = a[2], ay2 = a[3];
  const T a_area = box_area(ax1, ay1, ax2, ay2);
  const int64_t a_class = classes != nullptr ? classes[i] : 0;
  uint64_t bits = 0;
  for (int k = row_block == col_block ? t + 1 : 0; k < col_size; ++k) {
    if (tile_class[k] == a_class &&
        iou_above(ax1, ay1, ax2, ay2, a_area, tile[k][0], tile[k][1], tile[k][2], tile[k][3], tile[k][4], threshold)) {
      bits |= uint64_t(1) << k;
    }
  }
  mask[i * col_blocks + col_block] = bits;
}

// One block: the greedy pass over the mask. `removed_global` is null when the removed
// set fits in shared memory.
__global__ void nms_keep_kernel(
    int64_t n,
    int64_t col_blocks,
    const uint64_t* __restrict__ mask,
    uint64_t* removed_global,
    bool* __restrict__ keep) {
  extern __shared__ uint64_t removed_shared[];
  uint64_t* removed = removed_global != nullptr ? removed_global : removed_shared;
  for (int64_t j = threadIdx.x; j < col_blocks; j += blockDim.x) {
    removed[j] = 0;
  }
  for (int64_t block = 0; block < col_blocks; ++block) {
    __syncthreads();
    uint64_t word = removed[block];
    const int count = static_cast<int>(min(n - block * kTile, int64_t(kTile)));
    for (int k = 0; k < count; ++k) {
      // Bit k is final here: later updates only set bits of boxes after box k.
      if (word & (uint64_t(1) << k)) {
        continue;
      }
      const int64_t i = block * kTile + k;
      if (threadIdx.x == 0) {
        keep[i] = true;
      }
      const uint64_t* row = mask + i * col_blocks;
      for (int64_t j = block + threadIdx.x; j < col_blocks; j += blockDim.x) {
        removed[j] |= row[j];
      }
      __syncthreads();
      word = removed[block];
    }
  }
}

// Greedy NMS (per class when `classes` is defined) of boxes [N, 4] and scores [N] on
// one CUDA device; returns the kept indices in decreasing score order.
inline at::Tensor nms_cuda(
    const char* op,
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const at::Tensor& classes,
    double iou_threshold) {
  const c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t n = boxes.size(0);
  if (n == 0) {
    return at::empty({0}, boxes.options().dtype(at::kLong));
  }
  const at::ScalarType type = boxes.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor order = std::get<1>(scores.to(type).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted_boxes = boxes.to(type).index_select(0, order).contiguous();
  const at::Tensor sorted_classes =
      classes.defined() ? classes.to(at::kLong).index_select(0, order).contiguous() : at::Tensor();
  const int64_t col_blocks = (n + kTile - 1) / kTile;
  check_box_count(op, n, 65535 * kTile);
  at::Tensor mask = at::empty({n, col_blocks}, boxes.options().dtype(at::kLong));
  at::Tensor keep = at::zeros({n}, boxes.options().dtype(at::kBool));
  const bool shared = col_blocks <= kMaxSharedRemovedWords;
  at::Tensor removed = shared ? at::Tensor() : at::empty({col_blocks}, boxes.options().dtype(at::kLong));
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(type, "nms_mask_kernel", [&] {
    nms_mask_kernel<scalar_t>
        <<<dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(col_blocks)), kTile, 0, stream>>>(
            n,
            col_blocks,
            sorted_boxes.data_ptr<scalar_t>(),
            sorted_classes.defined() ? sorted_classes.data_ptr<int64_t>() : nullptr,
            compute_threshold<scalar_t>(iou_threshold),
            reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  nms_keep_kernel<<<1, kKeepThreads, shared ? col_blocks * sizeof(uint64_t) : 0, stream>>>(
      n,
      col_blocks,
      reinterpret_cast<const uint64_t*>(mask.data_ptr<int64_t>()),
      shared ? nullptr : reinterpret_cast<uint64_t*>(removed.data_ptr<int64_t>()),
      keep.data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return order.masked_select(keep);
}

} // namespace
} // namespace nms
} // namespace maskx
