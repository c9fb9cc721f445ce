// CUDA kernel of maskx::nms: bitmask NMS (nms_bitmask.cuh) over one class.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/cuda/nms_bitmask.cuh"
#include "ops/nms_checks.h"

namespace maskx {
namespace nms {
namespace {

// Values (finite coordinates and scores) are checked by the Python face before the call.
at::Tensor nms_forward_kernel(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_boxes_scores("nms", boxes, scores);
  check_threshold("nms", "iou_threshold", iou_threshold);
  return nms_cuda(boxes, scores, at::Tensor(), iou_threshold);
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  m.impl("nms", &nms_forward_kernel);
}

} // namespace nms
} // namespace maskx
