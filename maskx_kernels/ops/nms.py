"""maskx_kernels.nms: torchvision.ops.nms's signature and results.

Native kernels: csrc/ops/cpu/nms_kernel.cpp and csrc/ops/cuda/nms_kernel.cu, registered
as torch.ops.maskx.nms (schema in csrc/ops/nms.cpp, overlap rule in csrc/ops/nms_common.h).
The argument checks here (run by the fake kernels and the Triton launcher; eager calls are
checked by the native op) are shared with batched_nms and multiclass_nms.
"""
import torch
from torch import Tensor

from maskx_kernels._validation import check, check_float, check_like, should_check_values


def check_threshold(op: str, name: str, value: float) -> None:
    check(0.0 <= value <= 1.0, lambda: f"{op}: {name} must be in [0, 1], got {value}")


def check_scores_like_boxes(op: str, scores: Tensor, boxes: Tensor) -> None:
    check_float(op, "boxes", boxes)
    check_like(op, "scores", scores, "boxes", boxes)


def check_boxes_scores(op: str, boxes: Tensor, scores: Tensor) -> None:
    check(
        boxes.dim() == 2 and boxes.shape[1] == 4,
        lambda: f"{op}: boxes must be a Tensor[N, 4], got shape {list(boxes.shape)}",
    )
    check(
        scores.dim() == 1 and scores.shape[0] == boxes.shape[0],
        lambda: f"{op}: scores must be a Tensor[N] matching boxes [{boxes.shape[0]}, 4], got shape {list(scores.shape)}",
    )
    check_scores_like_boxes(op, scores, boxes)


def check_finite(op: str, **tensors: Tensor) -> None:
    """Raises on inf or NaN; the CPU kernels check the same themselves."""
    if not should_check_values(*tensors.values()):
        return
    for name, t in tensors.items():
        check(bool(torch.isfinite(t).all()), lambda: f"{op}: {name} must be finite, got inf or NaN")


@torch.library.register_fake("maskx::nms")
def _nms_fake(boxes, scores, iou_threshold):
    check_boxes_scores("nms", boxes, scores)
    check_threshold("nms", "iou_threshold", iou_threshold)
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept,), dtype=torch.long)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression, a drop-in for torchvision.ops.nms.

    Visits boxes by decreasing score and drops every box whose IoU with an already kept
    box is above ``iou_threshold`` (torchvision's IoU formula, evaluated in float32 for
    float32/float16/bfloat16 boxes and in float64 for float64 boxes). Boxes with zero or
    negative area have IoU 0 with every box, so they are never suppressed and never
    suppress. Equal scores are visited lower index first, on every device.

    Args:
        boxes: Tensor[N, 4] of (x1, y1, x2, y2), finite, float64/32/16 or bfloat16.
        scores: Tensor[N] of finite scores, same dtype and device as ``boxes``.
        iou_threshold: in [0, 1].

    Returns:
        int64 Tensor of the kept indices, in decreasing score order.
    """
    check_finite("nms", boxes=boxes, scores=scores)
    return torch.ops.maskx.nms(boxes, scores, iou_threshold)
