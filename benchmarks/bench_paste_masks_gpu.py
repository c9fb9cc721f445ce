"""Mask pasting on a GPU: maskx's CUDA kernel and its Triton kernel vs torchvision's
paste_masks_in_image on the device, on the workload of bench_paste_masks.py (100 masks,
800x1333), probabilities and thresholded; RLE (maskx: crops copied to the host and
encoded there) vs torchvision + threshold + copy + pycocotools.mask.encode. Skipped
without a CUDA device."""
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.models.detection.roi_heads import paste_masks_in_image

import maskx_kernels as mk
from benchmarks.bench_paste_masks import IMAGE, MASKS, make_inputs
from benchmarks.timing import cuda_synchronized, run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROUNDS = 20


def triton_paste(masks, boxes, threshold):
    from maskx_kernels.triton.paste_masks import paste_masks_forward

    return paste_masks_forward(masks, boxes, IMAGE, threshold=threshold)


def torchvision_rle(masks, boxes):
    binary = (paste_masks_in_image(masks[:, None], boxes, IMAGE) > 0.5).cpu().numpy()
    return [mask_utils.encode(np.array(m[0, :, :, None], dtype=np.uint8, order="F"))[0] for m in binary]


@pytest.mark.parametrize("impl", ["maskx", "maskx-triton", "torchvision"])
@pytest.mark.parametrize("threshold", [None, 0.5], ids=["probabilities", "thresholded"])
def test_paste_masks_gpu(benchmark, impl, threshold):
    masks, boxes = (t.cuda() for t in make_inputs())
    if impl == "maskx":
        fn = lambda: mk.paste_masks(masks, boxes, IMAGE, threshold=threshold)  # noqa: E731
    elif impl == "maskx-triton":
        fn = lambda: triton_paste(masks, boxes, threshold)  # noqa: E731
    elif threshold is None:
        fn = lambda: paste_masks_in_image(masks[:, None], boxes, IMAGE)  # noqa: E731
    else:
        fn = lambda: paste_masks_in_image(masks[:, None], boxes, IMAGE) > threshold  # noqa: E731
    case = "probabilities" if threshold is None else "thresholded"
    run(benchmark, f"paste_masks gpu {case}: {MASKS} masks, {IMAGE[0]}x{IMAGE[1]}", impl, cuda_synchronized(fn), ROUNDS)


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
def test_paste_masks_rle_gpu(benchmark, impl):
    masks, boxes = (t.cuda() for t in make_inputs())
    if impl == "maskx":
        fn = lambda: mk.paste_masks_rle(masks, boxes, IMAGE)  # noqa: E731
    else:
        fn = lambda: torchvision_rle(masks, boxes)  # noqa: E731
    run(benchmark, f"paste_masks gpu rle: {MASKS} masks, {IMAGE[0]}x{IMAGE[1]}", impl, fn, 5)
