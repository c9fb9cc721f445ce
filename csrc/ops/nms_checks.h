#pragma once
// Argument checks shared by the CPU and CUDA kernels of nms, batched_nms and
// multiclass_nms. Failures raise ValueError in Python.
// Defined once, in the .cpp beside this header; the CPU and CUDA kernels only call them.
#include <ATen/ATen.h>

#include <cmath>

namespace maskx {
namespace nms {

void check_threshold(const char* op, const char* name, double value);

void check_float(const char* op, const char* name, const at::Tensor& t);

// boxes [N, 4] and scores [N] of one floating dtype on one device.
void check_boxes_scores(const char* op, const at::Tensor& boxes, const at::Tensor& scores);

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
