"""Plain-PyTorch greedy NMS: the readable spec of maskx_kernels.nms.

Boxes are visited by decreasing score (a stable sort: equal scores lower index first);
each kept box suppresses the later boxes it overlaps with IoU above the threshold.
IoU follows torchvision's formula and evaluation order in the compute type (float32,
float64 for float64 boxes) and is compared with the threshold in float64; a pair with an
empty intersection has IoU 0.
"""
import torch
from torch import Tensor


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    n = boxes.shape[0]
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order].to(compute_dtype(boxes.dtype))
    x1, y1, x2, y2 = b.unbind(1)
    area = (x2 - x1) * (y2 - y1)
    later = torch.ones(n, dtype=torch.bool, device=boxes.device)
    suppressed = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(n):
        later[i] = False
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        iou = inter / ((area[i] + area) - inter)
        suppressed |= later & (inter > 0) & (iou.double() > iou_threshold)
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]
