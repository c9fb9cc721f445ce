"""Mask pasting, 100 masks of 28x28 into an 800x1333 image: maskx.paste_masks vs
torchvision's paste_masks_in_image, and maskx.paste_masks_rle vs paste_masks_in_image +
threshold + pycocotools.mask.encode (what torchvision's COCO evaluation does per mask).

Workload (fixed seed): boxes as a detector's (log-uniform sides from 16 to 512 pixels,
uniform centres, clipped to the image; benchmarks.workloads.detector_boxes), mask
probabilities the sigmoid of smooth random logits (many pixels on either side of 0.5).
Groups:
- probabilities: maskx with threshold=None (float32 [100, 800, 1333], 427 MB, what
  torchvision returns) vs paste_masks_in_image;
- thresholded: maskx's bool output (107 MB) vs paste_masks_in_image(...) > 0.5;
- rle: COCO compressed RLE of each thresholded mask.

Run: python -m benchmarks -k paste_masks
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from torchvision.models.detection.roi_heads import paste_masks_in_image

import maskx_kernels as mk
from benchmarks.timing import run
from benchmarks.workloads import detector_boxes

IMAGE = (800, 1333)
MASKS = 100
ROUNDS = 10
SLOW_ROUNDS = 3


def make_inputs(n=MASKS, image=IMAGE, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, 7, 7, generator=g) * 4
    masks = torch.sigmoid(F.interpolate(logits, size=(28, 28), mode="bilinear"))[:, 0]
    return masks, detector_boxes(n, image, seed=seed)


def torchvision_probabilities(masks, boxes):
    return paste_masks_in_image(masks[:, None], boxes, IMAGE)


def torchvision_thresholded(masks, boxes):
    return paste_masks_in_image(masks[:, None], boxes, IMAGE) > 0.5


def torchvision_rle(masks, boxes):
    binary = paste_masks_in_image(masks[:, None], boxes, IMAGE) > 0.5
    return [mask_utils.encode(np.array(m[0, :, :, None], dtype=np.uint8, order="F"))[0] for m in binary.numpy()]


CASES = {
    "probabilities": {
        "maskx": lambda m, b: mk.paste_masks(m, b, IMAGE, threshold=None),
        "torchvision": torchvision_probabilities,
    },
    "thresholded": {
        "maskx": lambda m, b: mk.paste_masks(m, b, IMAGE, threshold=0.5),
        "torchvision": torchvision_thresholded,
    },
    "rle": {
        "maskx": lambda m, b: mk.paste_masks_rle(m, b, IMAGE, threshold=0.5),
        "torchvision": torchvision_rle,
    },
}


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
@pytest.mark.parametrize("case", list(CASES))
def test_paste_masks(benchmark, case, impl):
    masks, boxes = make_inputs()
    fn = CASES[case][impl]
    group = f"paste_masks {case}: {MASKS} masks, {IMAGE[0]}x{IMAGE[1]}"
    out = run(benchmark, group, impl, lambda: fn(masks, boxes), ROUNDS if impl == "maskx" else SLOW_ROUNDS)
    assert len(out) == MASKS
