"""Plain-PyTorch paste_masks and paste_masks_rle: the oracle of the native and Triton
kernels, written the way torchvision's paste_masks_in_image computes (expand_boxes, then
F.interpolate per mask), with the box's part inside the image copied even where
torchvision's slicing fails (boxes wholly outside the image)."""
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from torch import Tensor


def pixel_boxes(boxes: Tensor, mask_width: int, padding: int = 1) -> Tensor:
    """torchvision's expand_boxes by (M + 2 padding) / M, in the boxes' dtype, then
    truncated to int64: Tensor[N, 4] of inclusive pixel corners."""
    scale = float(mask_width + 2 * padding) / mask_width
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    w_half = w_half * scale
    h_half = h_half * scale
    return torch.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], dim=1).to(torch.int64)


def paste_masks(
    masks: Tensor, boxes: Tensor, image_size: Sequence[int], threshold: float | None = 0.5, padding: int = 1
) -> Tensor:
    """masks [N, M_h, M_w], boxes [N, 4] -> [N, H, W] (bool above threshold, or probabilities)."""
    height, width = int(image_size[0]), int(image_size[1])
    out = masks.new_zeros((masks.shape[0], height, width))
    padded = F.pad(masks, (padding,) * 4)
    for i, (x0, y0, x1, y1) in enumerate(pixel_boxes(boxes, masks.shape[-1], padding).tolist()):
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        xa, xb = max(x0, 0), min(x1 + 1, width)
        ya, yb = max(y0, 0), min(y1 + 1, height)
        if xa >= xb or ya >= yb:
            continue
        resized = F.interpolate(padded[i][None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        out[i, ya:yb, xa:xb] = resized[ya - y0 : yb - y0, xa - x0 : xb - x0]
    return out if threshold is None else out > threshold


def paste_masks_rle(
    masks: Tensor, boxes: Tensor, image_size: Sequence[int], threshold: float = 0.5, padding: int = 1
) -> list[dict[str, object]]:
    """pycocotools.mask.encode of each thresholded mask of :func:`paste_masks`."""
    dense = paste_masks(masks, boxes, image_size, threshold, padding)
    return [mask_utils.encode(np.asfortranarray(m.numpy().astype(np.uint8))) for m in dense]
