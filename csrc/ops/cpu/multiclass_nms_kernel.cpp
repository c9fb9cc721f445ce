// CPU kernel of maskx::multiclass_nms: the score filter over [N, C], then the shared
// greedy engine (nms_greedy.h) with one independent NMS per class, all in one call.
// Candidates are the (row, class) pairs with score > score_threshold, numbered
// row * C + class, which is also the tie order.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "ops/cpu/nms_greedy.h"
#include "ops/nms_checks.h"

namespace maskx {
namespace nms {
namespace {

// Flat ids (row * cols + col) of the entries above `threshold`, in increasing order.
template <typename T>
std::vector<int64_t> above_threshold(const T* scores, int64_t rows, int64_t cols, T threshold) {
  std::vector<int64_t> start(rows + 1, 0);
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(cols, 1));
  at::parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      int64_t count = 0;
      for (int64_t c = 0; c < cols; ++c) {
        count += scores[n * cols + c] > threshold;
      }
      start[n + 1] = count;
    }
  });
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<int64_t> flat(start[rows]);
  at::parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      int64_t w = start[n];
      for (int64_t c = 0; c < cols; ++c) {
        if (scores[n * cols + c] > threshold) {
          flat[w++] = n * cols + c;
        }
      }
    }
  });
  return flat;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> multiclass_nms_forward_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    double score_threshold,
    double iou_threshold,
    int64_t max_detections) {
  const char* op = "multiclass_nms";
  check_multiclass(boxes, scores, score_threshold, iou_threshold, max_detections);
  const int64_t rows = scores.size(0);
  const int64_t cols = scores.size(1);
  const bool per_class = boxes.dim() == 3;
  const at::ScalarType type = compute_type(boxes.scalar_type());
  const at::Tensor b = boxes.to(type).contiguous();
  const at::Tensor s = scores.to(type).contiguous();
  std::vector<int64_t> kept_flat;
  AT_DISPATCH_FLOATING_TYPES(type, "multiclass_nms_cpu", [&] {
    const scalar_t* box = b.data_ptr<scalar_t>();
    const scalar_t* score = s.data_ptr<scalar_t>();
    check_finite(op, "boxes", box, b.numel());
    check_finite(op, "scores", score, s.numel());
    const std::vector<int64_t> flat = above_threshold(score, rows, cols, compute_threshold<scalar_t>(score_threshold));
    const int64_t m = static_cast<int64_t>(flat.size());
    std::vector<scalar_t> cand_boxes(m * 4), cand_scores(m);
    std::vector<int64_t> cand_classes(m);
    at::parallel_for(0, m, kElementsPerTask / 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const int64_t id = flat[i];
        const scalar_t* src = box + (per_class ? id : id / cols) * 4;
        std::copy(src, src + 4, &cand_boxes[i * 4]);
        cand_scores[i] = score[id];
        cand_classes[i] = id % cols;
      }
    });
    const std::vector<int64_t> kept = nms_by_class<scalar_t>(
        m, cand_boxes.data(), cand_scores.data(), cand_classes.data(), compute_threshold<scalar_t>(iou_threshold));
    const size_t count = std::min<size_t>(kept.size(), static_cast<size_t>(max_detections));
    kept_flat.resize(count);
    for (size_t i = 0; i < count; ++i) {
      kept_flat[i] = flat[kept[i]];
    }
  });
  at::Tensor flat_ids = at::empty({static_cast<int64_t>(kept_flat.size())}, scores.options().dtype(at::kLong));
  std::copy(kept_flat.begin(), kept_flat.end(), flat_ids.data_ptr<int64_t>());
  const at::Tensor indices = flat_ids.div(cols, "floor");
  const at::Tensor labels = flat_ids.remainder(cols);
  // Outputs keep the input dtype: gathered from the inputs, not from the compute copies.
  const at::Tensor out_boxes = per_class ? boxes.index({indices, labels}) : boxes.index_select(0, indices);
  const at::Tensor out_scores = scores.index({indices, labels});
  return {out_boxes, out_scores, labels, indices};
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  m.impl("multiclass_nms", &multiclass_nms_forward_kernel);
}

} // namespace nms
} // namespace maskx
