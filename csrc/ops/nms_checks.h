#pragma once
// Argument checks of nms, batched_nms and multiclass_nms, called by their entry points
// (nms_entry_points.h, the multiclass_nms kernels) before any work. Wording and helpers:
// ops/checks.h. Defined once, in the .cpp beside this header.
#include <ATen/ATen.h>

namespace maskx {
namespace nms {

// boxes [N, 4] and scores [N] of one floating dtype on one device.
void check_boxes_scores(const char* op, const at::Tensor& boxes, const at::Tensor& scores);

// idxs: integer [N] on the boxes' device.
void check_idxs(const char* op, const at::Tensor& idxs, const at::Tensor& boxes);

// boxes [N, C, 4] (one box per class) or [N, 4] (shared), scores [N, C].
void check_multiclass(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    double score_threshold,
    double iou_threshold,
    int64_t max_detections);

// At most max_boxes boxes (a kernel's grid limit).
void check_box_count(const char* op, int64_t boxes, int64_t max_boxes);

} // namespace nms
} // namespace maskx
