"""maskx_kernels.detection_embedding: the per-class input of the weight transfer function.

Mask^X R-CNN feeds T one vector per class built from the box predictor's parameters:
the classifier row (``cls``), the class's four box-regression rows (``box``), or both
(``cls+box``). The paper stops T's gradient from reaching the detector by default.
"""
import torch
from torch import Tensor

from maskx_kernels._validation import check

KINDS = ("cls", "box", "cls+box")


def detection_embedding(cls_weight: Tensor, bbox_weight: Tensor, kind: str = "cls+box", detach: bool = True) -> Tensor:
    """Per-class detection weights, one row per class.

    Args:
        cls_weight: Tensor[C, D], the box classifier's weight (FastRCNNPredictor.cls_score.weight).
        bbox_weight: Tensor[4C, D], the box regressor's weight (FastRCNNPredictor.bbox_pred.weight;
            rows 4c..4c+3 belong to class c).
        kind: ``"cls"`` -> [C, D], ``"box"`` -> [C, 4D] (class c's four rows side by side),
            ``"cls+box"`` -> [C, 5D] (``cls`` then ``box``; 5120 for D = 1024).
        detach: stop gradients from flowing back into the detector (the paper's default).

    Returns:
        Tensor[C, D], [C, 4D] or [C, 5D].
    """
    check(kind in KINDS, lambda: f"detection_embedding: kind must be one of {KINDS}, got {kind!r}")
    check(
        cls_weight.dim() == 2,
        lambda: f"detection_embedding: cls_weight must be a Tensor[C, D], got shape {list(cls_weight.shape)}",
    )
    c, d = cls_weight.shape
    check(
        bbox_weight.dim() == 2 and tuple(bbox_weight.shape) == (4 * c, d),
        lambda: f"detection_embedding: bbox_weight must be a Tensor[4C, D] = {(4 * c, d)}, got shape {list(bbox_weight.shape)}",
    )
    check(
        bbox_weight.dtype == cls_weight.dtype and bbox_weight.device == cls_weight.device,
        lambda: "detection_embedding: cls_weight and bbox_weight must share dtype and device",
    )
    if detach:
        cls_weight, bbox_weight = cls_weight.detach(), bbox_weight.detach()
    if kind == "cls":
        return cls_weight
    box = bbox_weight.reshape(c, 4 * d)
    if kind == "box":
        return box
    return torch.cat([cls_weight, box], dim=1)
