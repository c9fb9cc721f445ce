"""Triton kernels of per_class_mask_logits and its backward.

Forward: one program per (RoI, block of pixels), the K-channel dot with the RoI's class
row, bias, class-agnostic logits and sigmoid fused. Backward: one program per (RoI,
block of channels) writes the features' gradient and that RoI's partial weight and bias
gradients in one pass over the features; a second kernel sums the partials over the
RoIs of each class in RoI order. Deterministic, no atomics.

per_class_mask_logits_forward / per_class_mask_logits_backward are the launchers (the
arguments and results of torch.ops.maskx.per_class_mask_logits / _per_class_mask_logits_backward);
per_class_mask_logits is differentiable, through the custom op
torch.ops.maskx_triton.per_class_mask_logits, whose autograd mirrors the native one
(csrc/ops/autograd/per_class_mask_logits_autograd.cpp).
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

from maskx_kernels._validation import check, check_like
from maskx_kernels.ops.per_class_mask_logits import check_class_values, check_mask_logits_args
from maskx_kernels.triton._utils import accumulator_dtype, on_device, tl_accumulator_dtype

BLOCK_K = 32
BLOCK_P = 64


@triton.jit
def roi_logits(f_ptr, w_ptr, bias_ptr, agnostic_ptr, r, c, p, pmask, K, P,
               HAS_BIAS: tl.constexpr, HAS_AGNOSTIC: tl.constexpr, ACC: tl.constexpr, BLOCK_K: tl.constexpr):
    """Logits of RoI r (class c) at pixels p."""
    acc = tl.zeros((p.shape[0],), dtype=ACC)
    base = f_ptr + r * K * P
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        kmask = k < K
        f = tl.load(base + k[:, None] * P + p[None, :], mask=kmask[:, None] & pmask[None, :], other=0.0).to(ACC)
        w = tl.load(w_ptr + c * K + k, mask=kmask, other=0.0).to(ACC)
        acc += tl.sum(f * w[:, None], axis=0)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + c).to(ACC)
    if HAS_AGNOSTIC:
        acc += tl.load(agnostic_ptr + r * P + p, mask=pmask, other=0.0).to(ACC)
    return acc


@triton.jit
def _per_class_mask_logits_forward_kernel(
    f_ptr, w_ptr, cls_ptr, bias_ptr, agnostic_ptr, out_ptr, K, P,
    HAS_BIAS: tl.constexpr, HAS_AGNOSTIC: tl.constexpr, SIGMOID: tl.constexpr, ACC: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr,
):
    r = tl.program_id(0).to(tl.int64)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < P
    c = tl.load(cls_ptr + r)
    x = roi_logits(f_ptr, w_ptr, bias_ptr, agnostic_ptr, r, c, p, pmask, K, P, HAS_BIAS, HAS_AGNOSTIC, ACC, BLOCK_K)
    if SIGMOID:
        x = 1.0 / (1.0 + tl.exp(-x))
    tl.store(out_ptr + r * P + p, x.to(out_ptr.dtype.element_ty), mask=pmask)


@triton.jit
def _per_class_mask_logits_backward_kernel(
    g_ptr, f_ptr, w_ptr, cls_ptr, grad_f_ptr, partial_ptr, K, P,
    ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr,
):
    r = tl.program_id(0).to(tl.int64)
    kb = tl.program_id(1)
    k = kb * BLOCK_K + tl.arange(0, BLOCK_K)
    kmask = k < K
    c = tl.load(cls_ptr + r)
    w = tl.load(w_ptr + c * K + k, mask=kmask, other=0.0).to(ACC)
    dot = tl.zeros((BLOCK_K,), dtype=ACC)
    g_total = tl.zeros((BLOCK_P,), dtype=ACC)
    for p0 in range(0, P, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        pmask = p < P
        g = tl.load(g_ptr + r * P + p, mask=pmask, other=0.0).to(ACC)
        mask = kmask[:, None] & pmask[None, :]
        offsets = r * K * P + k[:, None] * P + p[None, :]
        f = tl.load(f_ptr + offsets, mask=mask, other=0.0).to(ACC)
        tl.store(grad_f_ptr + offsets, (w[:, None] * g[None, :]).to(grad_f_ptr.dtype.element_ty), mask=mask)
        dot += tl.sum(f * g[None, :], axis=1)
        g_total += g
    # Partials are [R, K + 1]: the K weight gradients, then the bias gradient.
    tl.store(partial_ptr + r * (K + 1) + k, dot, mask=kmask)
    if kb == 0:
        tl.store(partial_ptr + r * (K + 1) + K, tl.sum(g_total, axis=0))


@triton.jit
def _per_class_mask_logits_backward_class_sum_kernel(
    partial_ptr, order_ptr, offsets_ptr, out_ptr, N, ACC: tl.constexpr, BLOCK_N: tl.constexpr
):
    """out[c] = the sum of partial[r] over the RoIs r of class c (order[offsets[c],
    offsets[c + 1])), in RoI order."""
    c = tl.program_id(0).to(tl.int64)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    start = tl.load(offsets_ptr + c)
    end = tl.load(offsets_ptr + c + 1)
    acc = tl.zeros((BLOCK_N,), dtype=ACC)
    for i in range(start, end):
        r = tl.load(order_ptr + i)
        acc += tl.load(partial_ptr + r * N + n, mask=nmask, other=0.0)
    tl.store(out_ptr + c * N + n, acc, mask=nmask)


def _launch_forward(features, class_weights, classes, class_bias, agnostic_logits, sigmoid):
    """The forward kernel on arguments the caller has checked."""
    r, k, h, w = features.shape
    p = h * w
    f = features.contiguous()
    out = features.new_empty((r, h, w))
    if out.numel() == 0:
        return out
    bias = class_bias.contiguous() if class_bias is not None else f
    agnostic = agnostic_logits.contiguous() if agnostic_logits is not None else f
    with on_device(features):
        _per_class_mask_logits_forward_kernel[(r, triton.cdiv(p, BLOCK_P))](
            f, class_weights.contiguous(), classes.contiguous(), bias, agnostic, out, k, p,
            HAS_BIAS=class_bias is not None, HAS_AGNOSTIC=agnostic_logits is not None, SIGMOID=sigmoid,
            ACC=tl_accumulator_dtype(features.dtype), BLOCK_K=BLOCK_K, BLOCK_P=BLOCK_P,
        )
    return out


def _sum_by_class(partial: Tensor, classes: Tensor, num_classes: int) -> Tensor:
    """out[c] = sum of partial[r] over the RoIs r of class c, in RoI order: [C, N]."""
    order = torch.argsort(classes, stable=True)
    offsets = torch.searchsorted(classes[order], torch.arange(num_classes + 1, device=classes.device))
    n = partial.shape[1]
    out = partial.new_empty((num_classes, n))
    if out.numel() == 0:
        return out
    block_n = 64
    _per_class_mask_logits_backward_class_sum_kernel[(num_classes, triton.cdiv(n, block_n))](
        partial, order, offsets, out, n, ACC=tl_accumulator_dtype(partial.dtype), BLOCK_N=block_n
    )
    return out


def _launch_backward(grad, features, class_weights, classes):
    """The backward kernels on arguments the caller has checked (the per_class_mask_loss
    launchers call it too)."""
    r, k, h, w = features.shape
    p = h * w
    num_classes = class_weights.shape[0]
    f = features.contiguous()
    grad_features = torch.empty_like(f)
    partial = torch.zeros((r, k + 1), dtype=accumulator_dtype(features.dtype), device=features.device)
    with on_device(features):
        if r > 0:
            _per_class_mask_logits_backward_kernel[(r, triton.cdiv(max(k, 1), BLOCK_K))](
                grad.contiguous(), f, class_weights.contiguous(), classes.contiguous(), grad_features, partial, k, p,
                ACC=tl_accumulator_dtype(features.dtype), BLOCK_K=BLOCK_K, BLOCK_P=BLOCK_P,
            )
        sums = _sum_by_class(partial, classes.contiguous(), num_classes)
    # Copies, so that the two gradients never share sums' memory (custom ops' outputs may
    # not alias each other).
    grad_weights = sums[:, :k].to(class_weights.dtype, copy=True)
    grad_bias = sums[:, k].to(class_weights.dtype, copy=True)
    return grad_features, grad_weights, grad_bias


def _check_args(op, features, class_weights, classes, class_bias, agnostic_logits):
    check_mask_logits_args(op, features, class_weights, classes, class_bias, agnostic_logits)
    # The kernels read class rows unchecked: an eager call checks the class indices.
    if not torch.compiler.is_compiling():
        check_class_values(op, classes, class_weights.shape[0])


@torch.library.custom_op("maskx_triton::per_class_mask_logits", mutates_args=())
def _per_class_mask_logits_op(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    class_bias: Tensor | None,
    agnostic_logits: Tensor | None,
    sigmoid: bool,
) -> Tensor:
    return _launch_forward(features, class_weights, classes, class_bias, agnostic_logits, sigmoid)


@torch.library.custom_op("maskx_triton::_per_class_mask_logits_backward", mutates_args=())
def _per_class_mask_logits_backward_op(
    grad: Tensor, features: Tensor, class_weights: Tensor, classes: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    return _launch_backward(grad, features, class_weights, classes)


@_per_class_mask_logits_op.register_fake
def _per_class_mask_logits_fake(features, class_weights, classes, class_bias, agnostic_logits, sigmoid):
    return features.new_empty((features.shape[0], features.shape[2], features.shape[3]))


@_per_class_mask_logits_backward_op.register_fake
def _per_class_mask_logits_backward_fake(grad, features, class_weights, classes):
    return (
        torch.empty_like(features, memory_format=torch.contiguous_format),
        torch.empty_like(class_weights, memory_format=torch.contiguous_format),
        class_weights.new_empty((class_weights.shape[0],)),
    )


def _setup_context(ctx, inputs, output):
    features, class_weights, classes, class_bias, agnostic_logits, sigmoid = inputs
    # With sigmoid the output (the probabilities) gives the sigmoid's derivative.
    ctx.save_for_backward(features, class_weights, classes, output if sigmoid else None)
    ctx.has_bias = class_bias is not None
    ctx.has_agnostic = agnostic_logits is not None


def _backward(ctx, grad):
    features, class_weights, classes, probabilities = ctx.saved_tensors
    if probabilities is not None:
        grad = grad * probabilities * (1 - probabilities)
    grad_features = grad_weights = grad_bias = None
    needs = ctx.needs_input_grad
    if needs[0] or needs[1] or (ctx.has_bias and needs[3]):
        grad_features, grad_weights, grad_bias = torch.ops.maskx_triton._per_class_mask_logits_backward(
            grad, features, class_weights, classes
        )
    return (
        grad_features,
        grad_weights,
        None,
        grad_bias if ctx.has_bias else None,
        grad if ctx.has_agnostic else None,
        None,
    )


torch.library.register_autograd("maskx_triton::per_class_mask_logits", _backward, setup_context=_setup_context)


def per_class_mask_logits_forward(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    sigmoid: bool = False,
) -> Tensor:
    """The forward launcher: :func:`per_class_mask_logits`'s result, not differentiable."""
    _check_args("per_class_mask_logits", features, class_weights, classes, class_bias, agnostic_logits)
    return _launch_forward(features, class_weights, classes, class_bias, agnostic_logits, sigmoid)


def per_class_mask_logits_backward(
    grad: Tensor, features: Tensor, class_weights: Tensor, classes: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The backward launcher: gradients of the logits (not of probabilities) with respect
    to features, class_weights and class_bias; the agnostic logits' gradient is ``grad``."""
    op = "per_class_mask_logits backward"
    _check_args(op, features, class_weights, classes, None, None)
    r, _, h, w = features.shape
    check(tuple(grad.shape) == (r, h, w), lambda: f"{op}: grad has shape {tuple(grad.shape)}, expected {(r, h, w)}")
    check_like(op, "grad", grad, "features", features)
    return _launch_backward(grad, features, class_weights, classes)


def per_class_mask_logits(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    sigmoid: bool = False,
) -> Tensor:
    """:func:`maskx_kernels.per_class_mask_logits` (same arguments and result),
    differentiable with respect to features, class_weights, class_bias and agnostic_logits."""
    _check_args("per_class_mask_logits", features, class_weights, classes, class_bias, agnostic_logits)
    return torch.ops.maskx_triton.per_class_mask_logits(
        features, class_weights, classes, class_bias, agnostic_logits, sigmoid
    )
