// CUDA kernel of maskx::batched_nms: bitmask NMS (nms_bitmask.cuh) where a box only
// suppresses boxes with its class id, compared in the mask kernel (no coordinate offsets).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/cuda/nms_bitmask.cuh"
#include "ops/nms_checks.h"

namespace maskx {
namespace nms {
namespace {

// Values (finite coordinates and scores) are checked by the Python face before the call.
at::Tensor batched_nms_forward_kernel(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    const at::Tensor& idxs,
    double iou_threshold) {
  check_boxes_scores("batched_nms", boxes, scores);
  check_idxs("batched_nms", idxs, boxes);
  check_threshold("batched_nms", "iou_threshold", iou_threshold);
  return nms_cuda(boxes, scores, idxs, iou_threshold);
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  m.impl("batched_nms", &batched_nms_forward_kernel);
}

} // namespace nms
} // namespace maskx
