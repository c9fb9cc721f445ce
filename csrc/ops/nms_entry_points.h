#pragma once
// nms and batched_nms, written once over a device's NMS engine (ops/cpu/nms_greedy.h,
// ops/cuda/nms_bitmask.cuh): the entry points check the arguments, then nms is the
// engine over one class and batched_nms the engine within each value of idxs.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/checks.h"
#include "ops/nms_checks.h"

namespace maskx {
namespace nms {

// Kept indices of boxes [N, 4] and scores [N] in decreasing score order, suppressing only
// within a class when `classes` is defined; `op` names the caller in errors.
using Engine = at::Tensor (*)(
    const char* op,
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const at::Tensor& classes,
    double iou_threshold);

template <Engine engine>
struct EntryPoints {
  static at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
    const char* op = "nms";
    check_boxes_scores(op, boxes, scores);
    checks::check_threshold(op, "iou_threshold", iou_threshold);
    return engine(op, boxes, scores, at::Tensor(), iou_threshold);
  }

  static at::Tensor batched_nms(
      const at::Tensor& boxes,
      const at::Tensor& scores,
      const at::Tensor& idxs,
      double iou_threshold) {
    const char* op = "batched_nms";
    check_boxes_scores(op, boxes, scores);
    check_idxs(op, idxs, boxes);
    checks::check_threshold(op, "iou_threshold", iou_threshold);
    return engine(op, boxes, scores, idxs, iou_threshold);
  }

  static void register_kernels(torch::Library& m) {
    m.impl("nms", &nms);
    m.impl("batched_nms", &batched_nms);
  }
};

} // namespace nms
} // namespace maskx
