"""paste_masks in Triton: the same pixels as torch.ops.maskx.paste_masks
(csrc/ops/paste_masks_common.h), for any GPU Triton targets and for the CPU through the
Triton interpreter (TRITON_INTERPRET=1).

The launcher, paste_masks_forward (pasting has no gradient, so no backward), computes
each box's integer corners with torchvision's expand_boxes (torch ops,
maskx_kernels.reference.paste_masks.pixel_boxes) and zeroes the output; one program then
takes one mask and a band of BLOCK_Y image rows, and walks the box's columns in blocks of
BLOCK_X, each pixel computed with ATen's resize taps and, like the native kernels, fused
multiply-adds (tl.fma; the interpreter evaluates them unfused, so there values may differ
in the last bit).
"""
from collections.abc import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

from maskx_kernels.ops.paste_masks import _as_3d, _image_size, check_box_values, check_paste_args
from maskx_kernels.reference.paste_masks import pixel_boxes
from maskx_kernels.triton._utils import on_device, tl_accumulator_dtype

BLOCK_Y = 8
BLOCK_X = 64
# ATen's CPU resize weights the four taps with products (its channels-last kernel) when
# the output's height + width is at most this.
SMALL_OUTPUT_EXTENT = 128


@triton.jit
def _resize_taps(o, in_size, out_size, ACC: tl.constexpr):
    """Source indices and weights of resize output indices `o` (ATen, align_corners=False)."""
    if ACC == tl.float32:
        scale = tl.math.div_rn(in_size.to(ACC), out_size.to(ACC))  # IEEE division, as on the CPU
    else:
        scale = in_size.to(ACC) / out_size.to(ACC)
    real = tl.fma(scale, o.to(ACC) + 0.5, -0.5)
    real = tl.maximum(real, 0.0)
    i0 = tl.minimum(tl.floor(real).to(tl.int64), in_size - 1)
    l1 = tl.minimum(tl.maximum(real - i0.to(ACC), 0.0), 1.0)
    copy = in_size == out_size
    i0 = tl.where(copy, o, i0)
    l1 = tl.where(copy, 0.0, l1)
    i1 = i0 + tl.where(i0 < in_size - 1, 1, 0)
    return i0, i1, 1.0 - l1, l1


@triton.jit
def _padded_mask_value(mask_ptr, i, j, m_h, m_w, padding, valid, ACC: tl.constexpr):
    """Value at (i, j) of the mask padded by `padding` zeros on every side."""
    r = i - padding
    c = j - padding
    inside = valid & (r >= 0) & (r < m_h) & (c >= 0) & (c < m_w)
    return tl.load(mask_ptr + r * m_w + c, mask=inside, other=0.0).to(ACC)


@triton.jit
def _paste_masks_forward_kernel(mask_ptr, box_ptr, out_ptr, m_h, m_w, padding, height, width, threshold,
                  THRESHOLD: tl.constexpr, ACC: tl.constexpr, SMALL: tl.constexpr,
                  BLOCK_Y: tl.constexpr, BLOCK_X: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    x0 = tl.load(box_ptr + 4 * n)
    y0 = tl.load(box_ptr + 4 * n + 1)
    x1 = tl.load(box_ptr + 4 * n + 2)
    y1 = tl.load(box_ptr + 4 * n + 3)
    w = tl.maximum(x1 - x0 + 1, 1)
    h = tl.maximum(y1 - y0 + 1, 1)
    x_begin = tl.maximum(x0, 0)
    x_end = tl.minimum(x1 + 1, width)
    y_begin = tl.maximum(y0, 0)
    y_end = tl.minimum(y1 + 1, height)
    in_h = m_h + 2 * padding
    in_w = m_w + 2 * padding
    small = w + h <= SMALL
    y = tl.program_id(1).to(tl.int64) * BLOCK_Y + tl.arange(0, BLOCK_Y)
    y_ok = (y >= y_begin) & (y < y_end)
    yi0, yi1, yl0, yl1 = _resize_taps(y - y0, in_h, h, ACC)
    mask_n = mask_ptr + n * m_h * m_w
    for xs in range(x_begin, x_end, BLOCK_X):
        x = xs + tl.arange(0, BLOCK_X)
        x_ok = x < x_end
        xi0, xi1, xl0, xl1 = _resize_taps(x - x0, in_w, w, ACC)
        ok = y_ok[:, None] & x_ok[None, :]
        a = _padded_mask_value(mask_n, yi0[:, None], xi0[None, :], m_h, m_w, padding, ok, ACC)
        b = _padded_mask_value(mask_n, yi0[:, None], xi1[None, :], m_h, m_w, padding, ok, ACC)
        c = _padded_mask_value(mask_n, yi1[:, None], xi0[None, :], m_h, m_w, padding, ok, ACC)
        d = _padded_mask_value(mask_n, yi1[:, None], xi1[None, :], m_h, m_w, padding, ok, ACC)
        # ATen's generic kernel: rows interpolated horizontally, then vertically ...
        top = tl.fma(a, xl0[None, :], b * xl1[None, :])
        bottom = tl.fma(c, xl0[None, :], d * xl1[None, :])
        generic = tl.fma(top, yl0[:, None], bottom * yl1[:, None])
        # ... and its four-weight kernel for small outputs.
        w00 = yl0[:, None] * xl0[None, :]
        w01 = yl0[:, None] * xl1[None, :]
        w10 = yl1[:, None] * xl0[None, :]
        w11 = yl1[:, None] * xl1[None, :]
        four = tl.fma(d, w11, tl.fma(c, w10, tl.fma(a, w00, b * w01)))
        v = tl.where(small, four, generic)
        offsets = (n * height + y[:, None]) * width + x[None, :]
        if THRESHOLD:
            rounded = v.to(mask_ptr.dtype.element_ty).to(ACC)
            tl.store(out_ptr + offsets, (rounded > threshold).to(tl.uint8), mask=ok)
        else:
            tl.store(out_ptr + offsets, v.to(out_ptr.dtype.element_ty), mask=ok)


def _launch_forward(masks3: Tensor, boxes: Tensor, height: int, width: int, threshold: float | None,
                    padding: int) -> Tensor:
    """The kernel on [N, M_h, M_w] masks and arguments the caller has checked."""
    n = masks3.shape[0]
    out_dtype = torch.uint8 if threshold is not None else masks3.dtype
    out = torch.zeros((n, height, width), dtype=out_dtype, device=masks3.device)
    if out.numel() > 0:
        corners = pixel_boxes(boxes, masks3.shape[-1], padding).contiguous()
        rounded = float(torch.tensor(threshold if threshold is not None else 0.0, dtype=masks3.dtype))
        with on_device(masks3):
            _paste_masks_forward_kernel[(n, triton.cdiv(height, BLOCK_Y))](
                masks3.contiguous(), corners, out, masks3.shape[1], masks3.shape[2], padding, height, width, rounded,
                THRESHOLD=threshold is not None, ACC=tl_accumulator_dtype(masks3.dtype), SMALL=SMALL_OUTPUT_EXTENT,
                BLOCK_Y=BLOCK_Y, BLOCK_X=BLOCK_X,
            )
    return out.view(torch.bool) if threshold is not None else out


def paste_masks_forward(
    masks: Tensor,
    boxes: Tensor,
    image_size: Sequence[int],
    threshold: float | None = 0.5,
    padding: int = 1,
) -> Tensor:
    """The forward launcher (pasting has no gradient): :func:`maskx_kernels.paste_masks`
    (same arguments and result) in one launch."""
    op = "paste_masks"
    masks3, four_d = _as_3d(op, masks)
    height, width = _image_size(op, image_size)
    check_paste_args(op, masks3, boxes, height, width, padding, threshold)
    check_box_values(op, boxes, always=True)
    out = _launch_forward(masks3, boxes, height, width, threshold, padding)
    return out[:, None] if four_d else out
