"""Plain-PyTorch NMS within each category: the readable spec of maskx_kernels.batched_nms.

Every category runs the greedy NMS of reference.nms on its own boxes; the kept indices
of all categories are merged by decreasing score, equal scores lower index first.
"""
import torch
from torch import Tensor

from maskx_kernels.reference.nms import nms


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    kept = [boxes.new_empty((0,), dtype=torch.long)]
    for category in torch.unique(idxs):
        members = (idxs == category).nonzero()[:, 0]
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    kept = torch.sort(torch.cat(kept)).values
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]
