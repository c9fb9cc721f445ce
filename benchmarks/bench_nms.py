"""NMS family benchmarks: maskx vs torchvision in the same run.

Run: python -m pytest benchmarks/bench_nms.py --benchmark-only --benchmark-columns=median

Workloads (detector-like, fixed seeds):
- boxes: centres uniform in an 800x1088 image, widths and heights uniform in [16, 256]
  pixels, scores uniform in [0, 1); IoU threshold 0.5.
- nms: 1k, 10k and 50k boxes.
- batched_nms: 10k boxes with class ids uniform over 80 and over 3000 classes.
- multiclass_nms: 1000 RoIs x 81 and x 3000 classes, one box per (RoI, class) (the RoI's
  box plus N(0, 4 px) jitter per coordinate), scores a softmax over the classes of
  N(0, 9) logits (about 4k candidates above 0.05 for 81 classes, 2.7k spread over ~1.8k
  classes for 3000); score threshold 0.05, IoU 0.5, 100 detections. The torchvision
  baseline is the postprocess_detections recipe: score filter, batched_nms, top-k (its
  remove_small_boxes step is left out: it is not part of the op).
"""
import pytest
import torch
import torchvision

import maskx_kernels

IMAGE_H, IMAGE_W = 800, 1088
IOU = 0.5
SLOW = dict(rounds=3, iterations=1, warmup_rounds=1)


def detector_boxes(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    cx = torch.rand(n, generator=g) * IMAGE_W
    cy = torch.rand(n, generator=g) * IMAGE_H
    w = 16 + torch.rand(n, generator=g) * 240
    h = 16 + torch.rand(n, generator=g) * 240
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    return boxes, torch.rand(n, generator=g)


def detections(rois: int, num_classes: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    base, _ = detector_boxes(rois, seed)
    boxes = base[:, None, :] + torch.randn(rois, num_classes, 4, generator=g) * 4
    scores = torch.softmax(torch.randn(rois, num_classes, generator=g) * 3, dim=1)
    return boxes, scores


def torchvision_postprocess(boxes, scores, score_threshold, iou_threshold, max_detections):
    num_classes = scores.shape[1]
    labels = torch.arange(num_classes, device=scores.device).expand_as(scores).reshape(-1)
    boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
    keep = torch.where(scores > score_threshold)[0]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = torchvision.ops.batched_nms(boxes, scores, labels, iou_threshold)[:max_detections]
    return boxes[keep], scores[keep], labels[keep]


def run(benchmark, group, impl, fn, *args, pedantic=None):
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    if pedantic is None:
        return benchmark(fn, *args)
    return benchmark.pedantic(fn, args=args, **pedantic)


NMS_IMPLS = {"maskx": maskx_kernels.nms, "torchvision": torchvision.ops.nms}
BATCHED_IMPLS = {"maskx": maskx_kernels.batched_nms, "torchvision": torchvision.ops.batched_nms}


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
@pytest.mark.parametrize("n", [1000, 10_000, 50_000])
def test_nms(benchmark, impl, n):
    boxes, scores = detector_boxes(n, seed=n)
    slow = impl == "torchvision" and n >= 10_000
    pedantic = dict(SLOW, rounds=1 if n >= 50_000 else 3) if slow else None
    kept = run(benchmark, f"nms: {n} boxes", impl, NMS_IMPLS[impl], boxes, scores, IOU, pedantic=pedantic)
    assert kept.numel() > 0


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
@pytest.mark.parametrize("num_classes", [80, 3000])
def test_batched_nms(benchmark, impl, num_classes):
    boxes, scores = detector_boxes(10_000, seed=num_classes)
    idxs = torch.randint(0, num_classes, (10_000,), generator=torch.Generator().manual_seed(num_classes))
    pedantic = SLOW if impl == "torchvision" else None
    group = f"batched_nms: 10000 boxes, {num_classes} classes"
    kept = run(benchmark, group, impl, BATCHED_IMPLS[impl], boxes, scores, idxs, IOU, pedantic=pedantic)
    assert kept.numel() > 0


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
@pytest.mark.parametrize("num_classes", [81, 3000])
def test_multiclass_nms(benchmark, impl, num_classes):
    boxes, scores = detections(1000, num_classes, seed=num_classes)
    fn = maskx_kernels.multiclass_nms if impl == "maskx" else torchvision_postprocess
    pedantic = SLOW if impl == "torchvision" else None
    group = f"multiclass_nms: 1000 RoIs x {num_classes} classes"
    out = run(benchmark, group, impl, fn, boxes, scores, 0.05, IOU, 100, pedantic=pedantic)
    assert out[0].shape[0] == 100
