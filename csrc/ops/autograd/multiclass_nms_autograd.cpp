// Autograd of maskx::multiclass_nms, in C++ like the other maskx ops. Each kept box and
// score is one input entry, so the gradient goes back to that entry; labels and indices
// are not differentiable.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

namespace maskx {
namespace nms {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward_op(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    double score_threshold,
    double iou_threshold,
    int64_t max_detections) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("maskx::multiclass_nms", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, double, double, int64_t)>();
  return op.call(boxes, scores, score_threshold, iou_threshold, max_detections);
}

class MulticlassNMS : public torch::autograd::Function<MulticlassNMS> {
 public:
  static variable_list forward(
      AutogradContext* ctx,
      const at::Tensor& boxes,
      const at::Tensor& scores,
      double score_threshold,
      double iou_threshold,
      int64_t max_detections) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [kept_boxes, kept_scores, labels, indices] =
        forward_op(boxes, scores, score_threshold, iou_threshold, max_detections);
    ctx->save_for_backward({labels, indices});
    ctx->saved_data["boxes_shape"] = boxes.sym_sizes();
    ctx->saved_data["scores_shape"] = scores.sym_sizes();
    ctx->mark_non_differentiable({labels, indices});
    return {kept_boxes, kept_scores, labels, indices};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &labels = saved[0], &indices = saved[1];
    const at::Tensor &grad_boxes = grad_outputs[0], &grad_scores = grad_outputs[1];
    at::Tensor grad_in_boxes = at::zeros_symint(ctx->saved_data["boxes_shape"].toSymIntVector(), grad_boxes.options());
    c10::List<std::optional<at::Tensor>> where;
    where.push_back(indices);
    if (grad_in_boxes.dim() == 3) {
      where.push_back(labels);
      grad_in_boxes.index_put_(where, grad_boxes);
    } else {
      // [N, 4] boxes are shared by every class: a row can be kept for several classes.
      grad_in_boxes.index_put_(where, grad_boxes, /*accumulate=*/true);
    }
    at::Tensor grad_in_scores =
        at::zeros_symint(ctx->saved_data["scores_shape"].toSymIntVector(), grad_scores.options());
    grad_in_scores.index_put_(c10::List<std::optional<at::Tensor>>({indices, labels}), grad_scores);
    return {grad_in_boxes, grad_in_scores, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> multiclass_nms_autograd(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    double score_threshold,
    double iou_threshold,
    int64_t max_detections) {
  variable_list out = MulticlassNMS::apply(boxes, scores, score_threshold, iou_threshold, max_detections);
  return {out[0], out[1], out[2], out[3]};
}

} // namespace

TORCH_LIBRARY_IMPL(maskx, Autograd, m) {
  m.impl("multiclass_nms", &multiclass_nms_autograd);
}

} // namespace nms
} // namespace maskx
