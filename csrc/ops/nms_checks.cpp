// Argument checks of nms, batched_nms and multiclass_nms (declared in nms_checks.h).
#include "ops/nms_checks.h"

#include "ops/checks.h"

namespace maskx {
namespace nms {

using namespace checks;

namespace {

void check_scores_like_boxes(const char* op, const at::Tensor& scores, const at::Tensor& boxes) {
  check_float(op, "boxes", boxes);
  check_like(op, "scores", scores, "boxes", boxes);
}

} // namespace

void check_boxes_scores(const char* op, const at::Tensor& boxes, const at::Tensor& scores) {
  check_shape(boxes.dim() == 2 && boxes.size(1) == 4, op, "boxes", boxes, "[N, 4]");
  check_shape(
      scores.dim() == 1 && scores.size(0) == boxes.size(0),
      op,
      "scores",
      scores,
      "[N] matching boxes [",
      boxes.size(0),
      ", 4]");
  check_scores_like_boxes(op, scores, boxes);
}

void check_idxs(const char* op, const at::Tensor& idxs, const at::Tensor& boxes) {
  check_shape(
      idxs.dim() == 1 && idxs.size(0) == boxes.size(0),
      op,
      "idxs",
      idxs,
      "[N] matching boxes [",
      boxes.size(0),
      ", 4]");
  TORCH_CHECK_VALUE(
      at::isIntegralType(idxs.scalar_type(), /*includeBool=*/false),
      op,
      ": idxs must be an integer tensor, got ",
      idxs.scalar_type());
  check_same_device(op, "idxs", idxs, "boxes", boxes);
}

void check_multiclass(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    double score_threshold,
    double iou_threshold,
    int64_t max_detections) {
  const char* op = "multiclass_nms";
  check_shape(scores.dim() == 2, op, "scores", scores, "[N, C]");
  const bool shared = boxes.dim() == 2 && boxes.size(1) == 4;
  const bool per_class = boxes.dim() == 3 && boxes.size(1) == scores.size(1) && boxes.size(2) == 4;
  check_shape(
      (shared || per_class) && boxes.size(0) == scores.size(0),
      op,
      "boxes",
      boxes,
      "[N, C, 4] or Tensor[N, 4] matching scores ",
      scores.sizes());
  check_scores_like_boxes(op, scores, boxes);
  check_threshold(op, "score_threshold", score_threshold);
  check_threshold(op, "iou_threshold", iou_threshold);
  TORCH_CHECK_VALUE(max_detections >= 0, op, ": max_detections must be non-negative, got ", max_detections);
}

void check_box_count(const char* op, int64_t boxes, int64_t max_boxes) {
  TORCH_CHECK_VALUE(boxes <= max_boxes, op, ": at most ", max_boxes, " boxes on this device, got ", boxes);
}

} // namespace nms
} // namespace maskx
