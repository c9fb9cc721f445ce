// CPU kernel of maskx::nms: one class of the shared greedy engine (nms_greedy.h).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/cpu/nms_greedy.h"
#include "ops/nms_checks.h"

namespace maskx {
namespace nms {
namespace {

at::Tensor nms_forward_kernel(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_boxes_scores("nms", boxes, scores);
  check_threshold("nms", "iou_threshold", iou_threshold);
  return nms_cpu("nms", boxes, scores, at::Tensor(), iou_threshold);
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  m.impl("nms", &nms_forward_kernel);
}

} // namespace nms
} // namespace maskx
