"""Inputs shared by the NMS tests: detector-like boxes and near-threshold pairs."""
import numpy as np
import torch


def detector_boxes(n: int, seed: int, dtype=torch.float32, integer: bool = False):
    """n boxes with random centres in an 800x1088 image and sides in [8, 200] (integer
    coordinates when asked), and n distinct scores in random order."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([1088.0, 800.0], dtype=torch.float64)
    size = 8 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 192
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    if integer:
        boxes = boxes.round()
    scores = (torch.randperm(n, generator=g).to(torch.float64) + 1) / (n + 1)
    return boxes.to(dtype), scores.to(dtype)


def near_threshold_pairs(threshold: float, ulps: int = 3):
    """Pairs of 10x10 boxes shifted along x so that their IoU is a few float32 ulps
    below, at and above `threshold`; every pair sits apart from the others and the
    first box of a pair has the higher score. Float32 boxes and distinct scores."""
    shift = 10.0 * (1.0 - threshold) / (1.0 + threshold)
    base = np.float32(shift)
    shifts = [base]
    lo = hi = base
    for _ in range(ulps):
        lo = np.nextafter(lo, np.float32(-np.inf))
        hi = np.nextafter(hi, np.float32(np.inf))
        shifts += [lo, hi]
    boxes = []
    for k, dx in enumerate(shifts):
        origin = np.float32(40.0 * k + 0.3)
        boxes.append([origin, 5.0, origin + np.float32(10.0), 15.0])
        boxes.append([origin + dx, 5.0, origin + dx + np.float32(10.0), 15.0])
    boxes = torch.tensor(np.array(boxes, dtype=np.float32))
    scores = torch.linspace(1.0, 0.1, boxes.shape[0])
    return boxes, scores
