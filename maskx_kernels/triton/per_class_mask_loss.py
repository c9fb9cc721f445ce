"""Triton kernels of per_class_mask_loss and its backward.

Forward: one program per (RoI, block of pixels) forms the logits of valid RoIs only and
reduces their binary cross-entropy to one partial sum; the partials are summed in a fixed
order. Backward: the same programs recompute the logits and write (sigmoid(x) - t) *
grad / count, which then goes through the logits' backward kernels (zero for invalid RoIs).

per_class_mask_loss_forward / per_class_mask_loss_backward are the launchers (the
arguments and results of torch.ops.maskx.per_class_mask_loss / _per_class_mask_loss_backward);
per_class_mask_loss is differentiable, through the custom op
torch.ops.maskx_triton.per_class_mask_loss, whose autograd mirrors the native one
(csrc/ops/autograd/per_class_mask_loss_autograd.cpp).
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

from maskx_kernels._validation import check
from maskx_kernels.ops.per_class_mask_loss import check_mask_loss_args, check_target_values
from maskx_kernels.triton._utils import accumulator_dtype, on_device, tl_accumulator_dtype
from maskx_kernels.triton.per_class_mask_logits import BLOCK_K, BLOCK_P, roi_logits
from maskx_kernels.triton.per_class_mask_logits import _check_args as _check_logits_args
from maskx_kernels.triton.per_class_mask_logits import _launch_backward as _launch_logits_backward


@triton.jit
def _per_class_mask_loss_forward_kernel(
    f_ptr, w_ptr, cls_ptr, bias_ptr, agnostic_ptr, t_ptr, valid_ptr, partial_ptr, K, P, num_blocks,
    HAS_BIAS: tl.constexpr, HAS_AGNOSTIC: tl.constexpr, HAS_VALID: tl.constexpr, ACC: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr,
):
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
def _per_class_mask_loss_backward_kernel(
    f_ptr, w_ptr, cls_ptr, bias_ptr, agnostic_ptr, t_ptr, valid_ptr, scale_ptr, out_ptr, K, P,
    HAS_BIAS: tl.constexpr, HAS_AGNOSTIC: tl.constexpr, HAS_VALID: tl.constexpr, ACC: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr,
):
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


def _kernel_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid):
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


def _kernel_flags(features, class_bias, agnostic_logits, valid):
    return dict(
        HAS_BIAS=class_bias is not None,
        HAS_AGNOSTIC=agnostic_logits is not None,
        HAS_VALID=valid is not None,
        ACC=tl_accumulator_dtype(features.dtype),
        BLOCK_K=BLOCK_K,
        BLOCK_P=BLOCK_P,
    )


def _pixel_count(features: Tensor, valid: Tensor | None) -> Tensor:
    """Pixels in the loss (valid RoIs x H x W) as a tensor: no host synchronisation."""
    rois = valid.sum() if valid is not None else torch.tensor(features.shape[0], device=features.device)
    return rois * (features.shape[2] * features.shape[3])


def _launch_forward(features, class_weights, classes, targets, class_bias, agnostic_logits, valid):
    """The forward kernel on arguments the caller has checked."""
    r, k, h, w = features.shape
    p = h * w
    num_blocks = triton.cdiv(p, BLOCK_P)
    partial = torch.zeros((r, num_blocks), dtype=accumulator_dtype(features.dtype), device=features.device)
    if partial.numel() > 0:
        with on_device(features):
            _per_class_mask_loss_forward_kernel[(r, num_blocks)](
                *_kernel_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid),
                partial, k, p, num_blocks, **_kernel_flags(features, class_bias, agnostic_logits, valid),
            )
    count = _pixel_count(features, valid)
    return (partial.sum() / count.clamp(min=1)).to(features.dtype)


def _launch_backward(grad, features, class_weights, classes, targets, class_bias, agnostic_logits, valid):
    """The backward kernels on arguments the caller has checked."""
    r, k, h, w = features.shape
    p = h * w
    scale = (grad.reshape(()) / _pixel_count(features, valid).clamp(min=1)).to(features.dtype).reshape(1)
    grad_logits = features.new_empty((r, h, w))
    if grad_logits.numel() > 0:
        with on_device(features):
            _per_class_mask_loss_backward_kernel[(r, triton.cdiv(p, BLOCK_P))](
                *_kernel_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid),
                scale, grad_logits, k, p, **_kernel_flags(features, class_bias, agnostic_logits, valid),
            )
    grad_features, grad_weights, grad_bias = _launch_logits_backward(grad_logits, features, class_weights, classes)
    return grad_features, grad_weights, grad_bias, grad_logits


def _check_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid):
    op = "per_class_mask_loss"
    _check_logits_args(op, features, class_weights, classes, class_bias, agnostic_logits)
    check_mask_loss_args(features, targets, valid)
    if not torch.compiler.is_compiling():
        check_target_values(targets)


@torch.library.custom_op("maskx_triton::per_class_mask_loss", mutates_args=())
def _per_class_mask_loss_op(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    targets: Tensor,
    class_bias: Tensor | None,
    agnostic_logits: Tensor | None,
    valid: Tensor | None,
) -> Tensor:
    return _launch_forward(features, class_weights, classes, targets, class_bias, agnostic_logits, valid)


@torch.library.custom_op("maskx_triton::_per_class_mask_loss_backward", mutates_args=())
def _per_class_mask_loss_backward_op(
    grad: Tensor,
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    targets: Tensor,
    class_bias: Tensor | None,
    agnostic_logits: Tensor | None,
    valid: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _launch_backward(grad, features, class_weights, classes, targets, class_bias, agnostic_logits, valid)


@_per_class_mask_loss_op.register_fake
def _per_class_mask_loss_fake(features, class_weights, classes, targets, class_bias, agnostic_logits, valid):
    return features.new_empty(())


@_per_class_mask_loss_backward_op.register_fake
def _per_class_mask_loss_backward_fake(grad, features, class_weights, classes, targets, class_bias, agnostic_logits,
                                       valid):
    return (
        torch.empty_like(features, memory_format=torch.contiguous_format),
        torch.empty_like(class_weights, memory_format=torch.contiguous_format),
        class_weights.new_empty((class_weights.shape[0],)),
        torch.empty_like(targets, memory_format=torch.contiguous_format),
    )


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    features, class_weights, classes, targets, class_bias, agnostic_logits, valid = ctx.saved_tensors
    grad_features, grad_weights, grad_bias, grad_agnostic = torch.ops.maskx_triton._per_class_mask_loss_backward(
        grad, features, class_weights, classes, targets, class_bias, agnostic_logits, valid
    )
    return (
        grad_features,
        grad_weights,
        None,
        None,
        grad_bias if class_bias is not None else None,
        grad_agnostic if agnostic_logits is not None else None,
        None,
    )


torch.library.register_autograd("maskx_triton::per_class_mask_loss", _backward, setup_context=_setup_context)


def per_class_mask_loss_forward(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    targets: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """The forward launcher: :func:`per_class_mask_loss`'s result, not differentiable."""
    _check_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid)
    return _launch_forward(features, class_weights, classes, targets, class_bias, agnostic_logits, valid)


def per_class_mask_loss_backward(
    grad: Tensor,
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    targets: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The backward launcher: gradients of the loss with respect to features,
    class_weights, class_bias and agnostic_logits."""
    _check_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid)
    check(grad.numel() == 1, lambda: f"per_class_mask_loss backward: grad must have one element, got {grad.numel()}")
    return _launch_backward(grad, features, class_weights, classes, targets, class_bias, agnostic_logits, valid)


def per_class_mask_loss(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    targets: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """:func:`maskx_kernels.per_class_mask_loss` (same arguments and result), differentiable
    with respect to features, class_weights, class_bias and agnostic_logits."""
    _check_args(features, class_weights, classes, targets, class_bias, agnostic_logits, valid)
    return torch.ops.maskx_triton.per_class_mask_loss(
        features, class_weights, classes, targets, class_bias, agnostic_logits, valid
    )
