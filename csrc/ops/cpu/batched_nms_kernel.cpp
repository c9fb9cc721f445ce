// CPU kernel of maskx::batched_nms: the shared greedy engine (nms_greedy.h) with one
// independent NMS per value of idxs, all in one call.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/cpu/nms_greedy.h"
#include "ops/nms_checks.h"

namespace maskx {
namespace nms {
namespace {

at::Tensor batched_nms_forward_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const at::Tensor& idxs,
    double iou_threshold) {
  check_boxes_scores("batched_nms", boxes, scores);
  check_idxs("batched_nms", idxs, boxes);
  check_threshold("batched_nms", "iou_threshold", iou_threshold);
  return nms_cpu("batched_nms", boxes, scores, idxs, iou_threshold);
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  m.impl("batched_nms", &batched_nms_forward_kernel);
}

} // namespace nms
} // namespace maskx
