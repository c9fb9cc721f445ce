// CUDA kernel of maskx::multiclass_nms: the score filter over [N, C] on the device, then
// bitmask NMS (nms_bitmask.cuh) with class ids compared in the mask kernel, then the best
// max_detections. Candidates are numbered row * C + class, which is also the tie order.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

#include "ops/cuda/nms_bitmask.cuh"
#include "ops/nms_checks.h"

namespace maskx {
namespace nms {
namespace {

// Values (finite coordinates and scores) are checked by the Python face before the call.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> multiclass_nms_forward_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    double score_threshold,
    double iou_threshold,
    int64_t max_detections) {
  check_multiclass(boxes, scores, score_threshold, iou_threshold, max_detections);
  const c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t cols = scores.size(1);
  const bool per_class = boxes.dim() == 3;
  const at::ScalarType type = boxes.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor flat_scores = scores.to(type).reshape({-1});
  at::Tensor flat;
  AT_DISPATCH_FLOATING_TYPES(type, "multiclass_nms_filter", [&] {
    // The threshold is exact in the compute type, so the comparison is exact too.
    flat = at::nonzero(flat_scores > compute_threshold<scalar_t>(score_threshold)).view({-1});
  });
  const at::Tensor rows = flat.div(cols, "floor");
  const at::Tensor classes = flat.remainder(cols);
  const at::Tensor cand_boxes = per_class ? boxes.reshape({-1, 4}).index_select(0, flat) : boxes.index_select(0, rows);
  const at::Tensor kept =
      nms_cuda("multiclass_nms", cand_boxes, flat_scores.index_select(0, flat), classes, iou_threshold)
          .slice(0, 0, max_detections);
  const at::Tensor indices = rows.index_select(0, kept);
  const at::Tensor labels = classes.index_select(0, kept);
  const at::Tensor out_boxes = per_class ? boxes.index({indices, labels}) : boxes.index_select(0, indices);
  return {out_boxes, scores.index({indices, labels}), labels, indices};
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  m.impl("multiclass_nms", &multiclass_nms_forward_kernel);
}

} // namespace nms
} // namespace maskx
