"""maskx_kernels.batched_nms: torchvision.ops.batched_nms's signature and results.

Native kernels: csrc/ops/cpu/nms_kernel.cpp and csrc/ops/cuda/nms_kernel.cu (beside nms),
registered as torch.ops.maskx.batched_nms (schema in csrc/ops/batched_nms.cpp). Boxes of
different classes never suppress each other; the kernels group by class (CPU) or compare
class ids (CUDA) instead of offsetting coordinates, so results are exact for any ids.
"""
import torch
from torch import Tensor

from maskx_kernels._validation import check, check_same_device
from maskx_kernels.ops.nms import check_boxes_scores, check_finite, check_threshold


def check_idxs(op: str, idxs: Tensor, boxes: Tensor) -> None:
    check(
        idxs.dim() == 1 and idxs.shape[0] == boxes.shape[0],
        lambda: f"{op}: idxs must be a Tensor[N] matching boxes [{boxes.shape[0]}, 4], got shape {list(idxs.shape)}",
    )
    check(
        not idxs.dtype.is_floating_point and not idxs.dtype.is_complex and idxs.dtype != torch.bool,
        lambda: f"{op}: idxs must be an integer tensor, got {idxs.dtype}",
    )
    check_same_device(op, boxes=boxes, idxs=idxs)


@torch.library.register_fake("maskx::batched_nms")
def _batched_nms_fake(boxes, scores, idxs, iou_threshold):
    check_boxes_scores("batched_nms", boxes, scores)
    check_idxs("batched_nms", idxs, boxes)
    check_threshold("batched_nms", "iou_threshold", iou_threshold)
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept,), dtype=torch.long)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression within each category, a drop-in for
    torchvision.ops.batched_nms (see :func:`maskx_kernels.nms` for the overlap rule).

    Args:
        boxes: Tensor[N, 4] of (x1, y1, x2, y2), finite, float64/32/16 or bfloat16.
        scores: Tensor[N] of finite scores, same dtype and device as ``boxes``.
        idxs: integer Tensor[N], the category of each box (any integer values).
        iou_threshold: in [0, 1].

    Returns:
        int64 Tensor of the kept indices, in decreasing score order (ties: lower index first).
    """
    check_finite("batched_nms", boxes=boxes, scores=scores)
    return torch.ops.maskx.batched_nms(boxes, scores, idxs, iou_threshold)
