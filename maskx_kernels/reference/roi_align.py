"""RoIAlign written with plain tensor ops, one RoI at a time (torchvision's semantics).

Slow and simple on purpose: every sample point and its four bilinear taps are spelled
out, so the kernels can be checked against it at any precision (run it in float64).
"""
import math
from collections.abc import Sequence

import torch
from torch import Tensor


def _axis_samples(start: float, bin_size: float, pooled: int, grid: int, size: int, dtype, device):
    """Sample coordinates of every bin along one axis and their bilinear taps.

    Returns (low, high, w_low, w_high, valid), each [pooled, grid].
    """
    p = torch.arange(pooled, dtype=dtype, device=device)[:, None]
    i = torch.arange(grid, dtype=dtype, device=device)[None, :]
    coord = start + p * bin_size + (i + 0.5) * bin_size / grid
    valid = (coord >= -1.0) & (coord <= size)
    coord = coord.clamp(min=0)
    low = coord.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    coord = torch.where(at_edge, low.to(dtype), coord)
    w_high = coord - low.to(dtype)
    return low, high, 1.0 - w_high, w_high, valid


def roi_align_single(
    image: Tensor,
    box: Sequence[float],
    pooled_h: int,
    pooled_w: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """Pools one box (x1, y1, x2, y2) from one image [C, H, W] into [C, pooled_h, pooled_w]."""
    channels, height, width = image.shape
    dtype, device = image.dtype, image.device
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (float(v) for v in box)
    start_w, start_h = x1 * spatial_scale - offset, y1 * spatial_scale - offset
    roi_w, roi_h = x2 * spatial_scale - offset - start_w, y2 * spatial_scale - offset - start_h
    if not aligned:
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_h)
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_w)
    count = max(grid_h * grid_w, 1)
    out = torch.zeros(channels, pooled_h, pooled_w, dtype=dtype, device=device)
    if grid_h <= 0 or grid_w <= 0 or height == 0 or width == 0:
        return out
    yl, yh, wyl, wyh, vy = _axis_samples(start_h, bin_h, pooled_h, grid_h, height, dtype, device)
    xl, xh, wxl, wxh, vx = _axis_samples(start_w, bin_w, pooled_w, grid_w, width, dtype, device)
    # [PH, GH, PW, GW] sample grid; a sample outside the image on either axis is zero.
    valid = (vy[:, :, None, None] & vx[None, None, :, :]).to(dtype)

    def tap(ys, xs):
        return image[:, ys[:, :, None, None], xs[None, None, :, :]]  # [C, PH, GH, PW, GW]

    def weight(wy, wx):
        return wy[:, :, None, None] * wx[None, None, :, :] * valid

    value = (
        weight(wyl, wxl) * tap(yl, xl)
        + weight(wyl, wxh) * tap(yl, xh)
        + weight(wyh, wxl) * tap(yh, xl)
        + weight(wyh, wxh) * tap(yh, xh)
    )
    return value.sum(dim=(2, 4)) / count


def roi_align(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_h: int,
    pooled_w: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """torchvision.ops.roi_align on a [K, 5] rois tensor."""
    out = input.new_zeros((rois.shape[0], input.shape[1], pooled_h, pooled_w))
    for k, roi in enumerate(rois.tolist()):
        out[k] = roi_align_single(
            input[int(roi[0])], roi[1:], pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned
        )
    return out


def multi_scale_roi_align(
    features: list[Tensor],
    rois: Tensor,
    levels: Tensor,
    spatial_scales: Sequence[float],
    pooled_h: int,
    pooled_w: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """RoI k pooled from features[levels[k]] at spatial_scales[levels[k]]."""
    out = features[0].new_zeros((rois.shape[0], features[0].shape[1], pooled_h, pooled_w))
    for k, (roi, level) in enumerate(zip(rois.tolist(), levels.tolist())):
        out[k] = roi_align_single(
            features[level][int(roi[0])],
            roi[1:],
            pooled_h,
            pooled_w,
            spatial_scales[level],
            sampling_ratio,
            aligned,
        )
    return out
