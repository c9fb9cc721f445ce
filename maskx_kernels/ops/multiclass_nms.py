"""maskx_kernels.multiclass_nms: a detector's whole post-processing step in one native call.

Native kernels: csrc/ops/cpu/multiclass_nms_kernel.cpp and csrc/ops/cuda/multiclass_nms_kernel.cu,
registered as torch.ops.maskx.multiclass_nms (schema in csrc/ops/multiclass_nms.cpp).
Autograd: csrc/ops/autograd/multiclass_nms_autograd.cpp.
"""

import torch
from torch import Tensor

from maskx_kernels._validation import check
from maskx_kernels.ops.nms import check_finite, check_scores_like_boxes, check_threshold


def check_multiclass_args(
    boxes: Tensor, scores: Tensor, score_threshold: float, iou_threshold: float, max_detections: int
) -> None:
    op = "multiclass_nms"
    check(scores.dim() == 2, lambda: f"{op}: scores must be a Tensor[N, C], got shape {list(scores.shape)}")
    n, c = scores.shape
    shared = boxes.dim() == 2 and boxes.shape[1] == 4
    per_class = boxes.dim() == 3 and boxes.shape[1:] == (c, 4)
    check(
        (shared or per_class) and boxes.shape[0] == n,
        lambda: f"{op}: boxes must be a Tensor[N, C, 4] or Tensor[N, 4] matching scores {list(scores.shape)}, "
        f"got shape {list(boxes.shape)}",
    )
    check_scores_like_boxes(op, scores, boxes)
    check_threshold(op, "score_threshold", score_threshold)
    check_threshold(op, "iou_threshold", iou_threshold)
    check(max_detections >= 0, lambda: f"{op}: max_detections must be non-negative, got {max_detections}")


@torch.library.register_fake("maskx::multiclass_nms")
def _multiclass_nms_fake(boxes, scores, score_threshold, iou_threshold, max_detections):
    check_multiclass_args(boxes, scores, score_threshold, iou_threshold, max_detections)
    kept = torch.library.get_ctx().new_dynamic_size(max=max_detections)
    return (
        boxes.new_empty((kept, 4)),
        scores.new_empty((kept,)),
        scores.new_empty((kept,), dtype=torch.long),
        scores.new_empty((kept,), dtype=torch.long),
    )


def multiclass_nms(
    boxes: Tensor, scores: Tensor, score_threshold: float, iou_threshold: float, max_detections: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Score filter, per-class NMS and top-k in one call (torchvision's
    ``postprocess_detections`` without its Python loop over classes).

    Every (row, class) pair with ``scores[row, class] > score_threshold`` is a candidate
    with that class's box; candidates of one class are reduced by greedy NMS (the rule of
    :func:`maskx_kernels.nms`), and the best ``max_detections`` survivors are returned.
    Equal scores are ordered by row, then class.

    Args:
        boxes: Tensor[N, C, 4] (one box per class) or Tensor[N, 4] (shared by all
            classes), finite, float64/32/16 or bfloat16.
        scores: Tensor[N, C] of finite scores, same dtype and device as ``boxes``.
        score_threshold: in [0, 1]; candidates need a score strictly above it.
        iou_threshold: in [0, 1].
        max_detections: the most detections returned, >= 0.

    Returns:
        (boxes [M, 4], scores [M], labels [M] int64 in [0, C), indices [M] int64 rows of
        the input), sorted by decreasing score, M <= max_detections. The boxes and scores
        are differentiable with respect to the inputs.
    """
    check_finite("multiclass_nms", boxes=boxes, scores=scores)
    return torch.ops.maskx.multiclass_nms(boxes, scores, score_threshold, iou_threshold, max_detections)
