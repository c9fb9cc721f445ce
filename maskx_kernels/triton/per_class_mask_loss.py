"""Triton kernels of per_class_mask_loss and its backward.

Forward: one program per (RoI, block of pixels) forms the logits of valid RoIs only and
reduces their binary cross-entropy to one partial sum; the partials are summed in a fixed
order. Backward: the same programs recompute the logits and write (sigmoid(x) - t) *
grad / count, which then goes through the logits' backward kernels (zero for invalid RoIs).
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

from maskx_kernels.triton.per_class_mask_logits import (
    BLOCK_K,
    BLOCK_P,
    accumulator_dtype,
    per_class_mask_logits_backward_triton,
    roi_logits,
)


@triton.jit
def _loss_kernel(f_ptr, w_ptr, cls_ptr, bias_ptr, agnostic_ptr, t_ptr, valid_ptr, partial_ptr, K, P, num_blocks,
                 HAS_BIAS: tl.constexpr, HAS_AGNOSTIC: tl.constexpr, HAS_VALID: tl.constexpr, ACC: tl.constexpr,
                 BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    pb = tl.program_id(1)
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < P
    is_valid = True
    if HAS_VALID:
        is_valid = tl.load(valid_ptr + r) != 0
    loss = tl.zeros((BLOCK_P,), dtype=ACC)
    if is_valid:
        c = tl.load(cls_ptr + r)
        x = roi_logits(f_ptr, w_ptr, bias_ptr, agnostic_ptr, r, c, p, pmask, K, P, HAS_BIAS, HAS_AGNOSTIC, ACC, BLOCK_K)
        t = tl.load(t_ptr + r * P + p, mask=pmask, other=0.0).to(ACC)
        # max(x, 0) - x t + log(1 + exp(-|x|)): never overflows.
        bce = tl.maximum(x, 0.0) - x * t + tl.log(1.0 + tl.exp(-tl.abs(x)))
        loss = tl.where(pmask, bce, 0.0)
    tl.store(partial_ptr + r * num_blocks + pb, tl.sum(loss, axis=0))


@triton.jit
def _loss_grad_kernel(f_ptr, w_ptr, cls_ptr, bias_ptr, agnostic_ptr, t_ptr, valid_ptr, scale_ptr, out_ptr, K, P,
                      HAS_BIAS: tl.constexpr, HAS_AGNOSTIC: tl.constexpr, HAS_VALID: tl.constexpr, ACC: tl.constexpr,
                      BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < P
    is_valid = True
    if HAS_VALID:
        is_valid = tl.load(valid_ptr + r) != 0
    d = tl.zeros((BLOCK_P,), dtype=ACC)
    if is_valid:
        c = tl.load(cls_ptr + r)
        x = roi_logits(f_ptr, w_ptr, bias_ptr, agnostic_ptr, r, c, p, pmask, K, P, HAS_BIAS, HAS_AGNOSTIC, ACC, BLOCK_K)
        t = tl.load(t_ptr + r * P + p, mask=pmask, other=0.0).to(ACC)
        d = (1.0 / (1.0 + tl.exp(-x)) - t) * tl.load(scale_ptr).to(ACC)
    tl.store(out_ptr + r * P + p, d.to(out_ptr.dtype.element_ty), mask=pmask)


def _launch_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid):
    f = features.contiguous()
    return (
        f,
        class_weights.contiguous(),
        classes.contiguous(),
        class_bias.contiguous() if class_bias is not None else f,
        agnostic_logits.contiguous() if agnostic_logits is not None else f,
        targets.contiguous(),
        valid.contiguous() if valid is not None else classes,
    )


def _flags(features, class_bias, agnostic_logits, valid):
    return dict(
        HAS_BIAS=class_bias is not None,
        HAS_AGNOSTIC=agnostic_logits is not None,
        HAS_VALID=valid is not None,
        ACC=accumulator_dtype(features.dtype),
        BLOCK_K=BLOCK_K,
        BLOCK_P=BLOCK_P,
    )


def _pixel_count(features: Tensor, valid: Tensor | None) -> Tensor:
    """Pixels in the loss (valid RoIs x H x W) as a tensor: no host synchronisation."""
    rois = valid.sum() if valid is not None else torch.tensor(features.shape[0], device=features.device)
    return rois * (features.shape[2] * features.shape[3])


def per_class_mask_loss_triton(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    targets: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """per_class_mask_loss (see maskx_kernels.per_class_mask_loss)."""
    r, k, h, w = features.shape
    p = h * w
    num_blocks = triton.cdiv(p, BLOCK_P)
    acc_dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    partial = torch.zeros((r, num_blocks), dtype=acc_dtype, device=features.device)
    if partial.numel() > 0:
        _loss_kernel[(r, num_blocks)](
            *_launch_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid),
            partial, k, p, num_blocks, **_flags(features, class_bias, agnostic_logits, valid),
        )
    count = _pixel_count(features, valid)
    return (partial.sum() / count.clamp(min=1)).to(features.dtype)


def per_class_mask_loss_backward_triton(
    grad: Tensor,
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    targets: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of the loss with respect to features, class_weights, class_bias and
    agnostic_logits."""
    r, k, h, w = features.shape
    p = h * w
    scale = (grad.reshape(()) / _pixel_count(features, valid).clamp(min=1)).to(features.dtype).reshape(1)
    grad_logits = features.new_empty((r, h, w))
    if grad_logits.numel() > 0:
        _loss_grad_kernel[(r, triton.cdiv(p, BLOCK_P))](
            *_launch_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid),
            scale, grad_logits, k, p, **_flags(features, class_bias, agnostic_logits, valid),
        )
    grad_features, grad_weights, grad_bias = per_class_mask_logits_backward_triton(
        grad_logits, features, class_weights, classes
    )
    return grad_features, grad_weights, grad_bias, grad_logits
