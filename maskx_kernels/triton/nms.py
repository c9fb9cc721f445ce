"""Triton NMS: the IoU-mask kernel and a launcher that completes greedy NMS from the mask.

The launcher, nms_forward (NMS has no gradient, so no backward), sorts the boxes by
decreasing score (stable: ties lower index first), then _nms_forward_iou_mask_kernel
fills a [N, ceil(N / 64)] int64 matrix whose bit k of word (i, c) says that box i
suppresses box 64 c + k: a later box of the same class whose IoU with box i is above the
threshold (the rule of csrc/ops/nms_common.h, areas precomputed so that the only fusable
product is the intersection). _nms_forward_keep_kernel then runs the greedy pass in one
program, holding the removed set in registers. Results equal maskx_kernels.nms and
batched_nms; on a GPU the compiler may fuse the intersection product into the union's
subtraction, which can move an IoU within one rounding of the threshold across it.
"""

import numpy as np
import torch
import triton
import triton.language as tl
from torch import Tensor

from maskx_kernels._validation import check
from maskx_kernels.ops.batched_nms import check_idxs
from maskx_kernels.ops.nms import check_boxes_scores, check_threshold
from maskx_kernels.triton._utils import accumulator_dtype, on_device

TILE = 64  # boxes per mask word


@triton.jit
def _load_boxes(boxes_ptr, areas_ptr, classes_ptr, index, ok, padding_class):
    """Corners, area and class of the boxes at `index` (padding_class where not ok)."""
    x1 = tl.load(boxes_ptr + index * 4 + 0, mask=ok, other=0)
    y1 = tl.load(boxes_ptr + index * 4 + 1, mask=ok, other=0)
    x2 = tl.load(boxes_ptr + index * 4 + 2, mask=ok, other=0)
    y2 = tl.load(boxes_ptr + index * 4 + 3, mask=ok, other=0)
    area = tl.load(areas_ptr + index, mask=ok, other=0)
    cls = tl.load(classes_ptr + index, mask=ok, other=padding_class)
    return x1, y1, x2, y2, area, cls


@triton.jit
def _nms_forward_iou_mask_kernel(
    boxes_ptr, areas_ptr, classes_ptr, threshold_ptr, mask_ptr, n, col_blocks, TILE: tl.constexpr
):
    row_block = tl.program_id(0)
    col_block = tl.program_id(1)
    rows = row_block * TILE + tl.arange(0, TILE)
    cols = col_block * TILE + tl.arange(0, TILE)
    row_ok = rows < n
    col_ok = cols < n
    # Padding rows and columns get different classes, so they never suppress each other.
    ax1, ay1, ax2, ay2, a_area, a_class = _load_boxes(boxes_ptr, areas_ptr, classes_ptr, rows, row_ok, -1)
    bx1, by1, bx2, by2, b_area, b_class = _load_boxes(boxes_ptr, areas_ptr, classes_ptr, cols, col_ok, -2)
    threshold = tl.load(threshold_ptr)

    w = tl.minimum(ax2[:, None], bx2[None, :]) - tl.maximum(ax1[:, None], bx1[None, :])
    h = tl.minimum(ay2[:, None], by2[None, :]) - tl.maximum(ay1[:, None], by1[None, :])
    inter = tl.maximum(w, 0.0) * tl.maximum(h, 0.0)
    union = (a_area[:, None] + b_area[None, :]) - inter
    positive = inter > 0
    iou = inter / tl.where(positive, union, 1.0)
    hit = positive & (iou > threshold) & (cols[None, :] > rows[:, None])
    hit = hit & (a_class[:, None] == b_class[None, :]) & col_ok[None, :]
    # Distinct powers of two: their sum is their bitwise OR (bit 63 wraps to the sign).
    bit = tl.full([TILE], 1, tl.int64) << tl.arange(0, TILE).to(tl.int64)
    words = tl.sum(tl.where(hit, bit[None, :], 0), axis=1)
    tl.store(mask_ptr + rows * col_blocks + col_block, words, mask=row_ok)


@triton.jit
def _nms_forward_keep_kernel(mask_ptr, keep_ptr, n, col_blocks, WORDS: tl.constexpr):
    word_ids = tl.arange(0, WORDS)
    in_range = word_ids < col_blocks
    removed = tl.zeros([WORDS], dtype=tl.int64)
    for i in range(n):
        word = tl.sum(tl.where(word_ids == i // 64, removed, 0))
        alive = ((word >> (i % 64)) & 1) == 0
        row = tl.load(mask_ptr + i * col_blocks + word_ids, mask=in_range & alive, other=0)
        removed = removed | row
        tl.store(keep_ptr + i, alive)


def _compute_threshold(threshold: float, dtype: torch.dtype) -> float:
    """The largest value of `dtype` not above `threshold`: comparing in `dtype` against it
    equals comparing in float64 against `threshold` (torchvision's rule)."""
    if dtype == torch.float64:
        return threshold
    t = np.float32(threshold)
    if float(t) > threshold:
        t = np.nextafter(t, np.float32(-np.inf))
    return float(t)


def _launch_forward(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None) -> Tensor:
    """The kernels on arguments the caller has checked (at least one box)."""
    with on_device(boxes):
        n = boxes.shape[0]
        compute = accumulator_dtype(boxes.dtype)
        order = torch.sort(scores.to(compute), descending=True, stable=True).indices
        sorted_boxes = boxes.to(compute)[order].contiguous()
        x1, y1, x2, y2 = sorted_boxes.unbind(1)
        areas = ((x2 - x1) * (y2 - y1)).contiguous()
        if idxs is None:
            classes = torch.zeros(n, dtype=torch.long, device=boxes.device)
        else:
            classes = idxs.to(torch.long)[order].contiguous()
        threshold = torch.tensor([_compute_threshold(iou_threshold, compute)], dtype=compute, device=boxes.device)
        col_blocks = triton.cdiv(n, TILE)
        mask = torch.empty((n, col_blocks), dtype=torch.long, device=boxes.device)
        _nms_forward_iou_mask_kernel[(col_blocks, col_blocks)](
            sorted_boxes, areas, classes, threshold, mask, n, col_blocks, TILE=TILE
        )
        keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
        _nms_forward_keep_kernel[(1,)](mask, keep, n, col_blocks, WORDS=triton.next_power_of_2(col_blocks))
        return order[keep]


def nms_forward(boxes: Tensor, scores: Tensor, iou_threshold: float, idxs: Tensor | None = None) -> Tensor:
    """The forward launcher (NMS has no gradient): greedy NMS with the Triton IoU-mask
    kernel, the results of maskx_kernels.nms, or of maskx_kernels.batched_nms when the
    class ids ``idxs`` are given."""
    op = "nms" if idxs is None else "batched_nms"
    check_boxes_scores(op, boxes, scores)
    if idxs is not None:
        check_idxs(op, idxs, boxes)
    check_threshold(op, "iou_threshold", iou_threshold)
    for name, t in (("boxes", boxes), ("scores", scores)):
        check(bool(torch.isfinite(t).all()), lambda: f"{op}: {name} must be finite, got inf or NaN")
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    return _launch_forward(boxes, scores, iou_threshold, idxs)
