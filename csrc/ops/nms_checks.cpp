// Argument checks of nms, batched_nms and multiclass_nms (declared in nms_checks.h).
#include "ops/nms_checks.h"

#include <cmath>

namespace maskx {
namespace nms {

void check_threshold(const char* op, const char* name, double value) {
  TORCH_CHECK_VALUE(value >= 0.0 && value <= 1.0, op, ": ", name, " must be in [0, 1], got ", value);
}

void check_float(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(
      at::isFloatingType(t.scalar_type()),
      op,
      ": ",
      name,
      " must be float64, float32, float16 or bfloat16, got ",
      t.scalar_type());
}

void check_boxes_scores(const char* op, const at::Tensor& boxes, const at::Tensor& scores) {
  TORCH_CHECK_VALUE(
      boxes.dim() == 2 && boxes.size(1) == 4, op, ": boxes must be a [N, 4] tensor, got shape ", boxes.sizes());
  TORCH_CHECK_VALUE(
      scores.dim() == 1 && scores.size(0) == boxes.size(0),
      op,
      ": scores must be a [N] tensor matching boxes [",
      boxes.size(0),
      ", 4], got shape ",
      scores.sizes());
  check_float(op, "boxes", boxes);
  TORCH_CHECK_VALUE(
      scores.scalar_type() == boxes.scalar_type(),
      op,
      ": scores (",
      scores.scalar_type(),
      ") must have the boxes' dtype (",
      boxes.scalar_type(),
      ")");
  TORCH_CHECK_VALUE(
      scores.device() == boxes.device(), op, ": scores are on ", scores.device(), " but boxes are on ", boxes.device());
}

void check_idxs(const char* op, const at::Tensor& idxs, const at::Tensor& boxes) {
  TORCH_CHECK_VALUE(
      idxs.dim() == 1 && idxs.size(0) == boxes.size(0),
      op,
      ": idxs must be a [N] tensor matching boxes [",
      boxes.size(0),
      ", 4], got shape ",
      idxs.sizes());
  TORCH_CHECK_VALUE(
      at::isIntegralType(idxs.scalar_type(), /*includeBool=*/false),
      op,
      ": idxs must be an integer tensor, got ",
      idxs.scalar_type());
  TORCH_CHECK_VALUE(
      idxs.device() == boxes.device(), op, ": idxs are on ", idxs.device(), " but boxes are on ", boxes.device());
}

void check_multiclass(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    double score_threshold,
    double iou_threshold,
    int64_t max_detections) {
  const char* op = "multiclass_nms";
  TORCH_CHECK_VALUE(scores.dim() == 2, op, ": scores must be a [N, C] tensor, got shape ", scores.sizes());
  const bool per_class = boxes.dim() == 3;
  TORCH_CHECK_VALUE(
      (boxes.dim() == 2 && boxes.size(1) == 4) || (per_class && boxes.size(1) == scores.size(1) && boxes.size(2) == 4),
      op,
      ": boxes must be a [N, C, 4] or [N, 4] tensor matching scores ",
      scores.sizes(),
      ", got shape ",
      boxes.sizes());
  TORCH_CHECK_VALUE(
      boxes.size(0) == scores.size(0), op, ": boxes have ", boxes.size(0), " rows but scores have ", scores.size(0));
  check_float(op, "boxes", boxes);
  TORCH_CHECK_VALUE(
      scores.scalar_type() == boxes.scalar_type(),
      op,
      ": scores (",
      scores.scalar_type(),
      ") must have the boxes' dtype (",
      boxes.scalar_type(),
      ")");
  TORCH_CHECK_VALUE(
      scores.device() == boxes.device(), op, ": scores are on ", scores.device(), " but boxes are on ", boxes.device());
  check_threshold(op, "score_threshold", score_threshold);
  check_threshold(op, "iou_threshold", iou_threshold);
  TORCH_CHECK_VALUE(max_detections >= 0, op, ": max_detections must be non-negative, got ", max_detections);
}

void check_box_count(const char* op, int64_t boxes, int64_t max_boxes) {
  TORCH_CHECK_VALUE(boxes <= max_boxes, op, ": at most ", max_boxes, " boxes on this device, got ", boxes);
}

} // namespace nms
} // namespace maskx
