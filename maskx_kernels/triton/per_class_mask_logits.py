"""Triton kernels of per_class_mask_logits and its backward.

Forward: one program per (RoI, block of pixels), the K-channel dot with the RoI's class
row, bias, class-agnostic logits and sigmoid fused. Backward: one program per (RoI,
block of channels) writes the features' gradient and that RoI's partial weight and bias
gradients in one pass over the features; a second kernel sums the partials over the
RoIs of each class in RoI order. Deterministic, no atomics.
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_K = 32
BLOCK_P = 64


def accumulator_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


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
def _logits_kernel(f_ptr, w_ptr, cls_ptr, bias_ptr, agnostic_ptr, out_ptr, K, P,
                   HAS_BIAS: tl.constexpr, HAS_AGNOSTIC: tl.constexpr, SIGMOID: tl.constexpr, ACC: tl.constexpr,
                   BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < P
    c = tl.load(cls_ptr + r)
    x = roi_logits(f_ptr, w_ptr, bias_ptr, agnostic_ptr, r, c, p, pmask, K, P, HAS_BIAS, HAS_AGNOSTIC, ACC, BLOCK_K)
    if SIGMOID:
        x = 1.0 / (1.0 + tl.exp(-x))
    tl.store(out_ptr + r * P + p, x.to(out_ptr.dtype.element_ty), mask=pmask)


@triton.jit
def _logits_backward_kernel(g_ptr, f_ptr, w_ptr, cls_ptr, grad_f_ptr, partial_ptr, K, P,
                            ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr):
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
def _sum_by_class_kernel(partial_ptr, order_ptr, offsets_ptr, out_ptr, N, ACC: tl.constexpr, BLOCK_N: tl.constexpr):
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


def per_class_mask_logits_triton(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    sigmoid: bool = False,
) -> Tensor:
    """per_class_mask_logits (see maskx_kernels.per_class_mask_logits) in one launch."""
    r, k, h, w = features.shape
    p = h * w
    f = features.contiguous()
    out = features.new_empty((r, h, w))
    if out.numel() == 0:
        return out
    bias = class_bias.contiguous() if class_bias is not None else f
    agnostic = agnostic_logits.contiguous() if agnostic_logits is not None else f
    _logits_kernel[(r, triton.cdiv(p, BLOCK_P))](
        f, class_weights.contiguous(), classes.contiguous(), bias, agnostic, out, k, p,
        HAS_BIAS=class_bias is not None, HAS_AGNOSTIC=agnostic_logits is not None, SIGMOID=sigmoid,
        ACC=accumulator_dtype(features.dtype), BLOCK_K=BLOCK_K, BLOCK_P=BLOCK_P,
    )
    return out


def sum_by_class(partial: Tensor, classes: Tensor, num_classes: int) -> Tensor:
    """out[c] = sum of partial[r] over the RoIs r of class c, in RoI order: [C, N]."""
    order = torch.argsort(classes, stable=True)
    offsets = torch.searchsorted(classes[order], torch.arange(num_classes + 1, device=classes.device))
    n = partial.shape[1]
    out = partial.new_empty((num_classes, n))
    if out.numel() == 0:
        return out
    block_n = 64
    _sum_by_class_kernel[(num_classes, triton.cdiv(n, block_n))](
        partial, order, offsets, out, n, ACC=accumulator_dtype(partial.dtype), BLOCK_N=block_n
    )
    return out


def per_class_mask_logits_backward_triton(
    grad: Tensor, features: Tensor, class_weights: Tensor, classes: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of the logits with respect to features, class_weights and class_bias."""
    r, k, h, w = features.shape
    p = h * w
    num_classes = class_weights.shape[0]
    f = features.contiguous()
    grad_features = torch.empty_like(f)
    acc_dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    partial = torch.zeros((r, k + 1), dtype=acc_dtype, device=features.device)
    if r > 0:
        _logits_backward_kernel[(r, triton.cdiv(max(k, 1), BLOCK_K))](
            grad.contiguous(), f, class_weights.contiguous(), classes.contiguous(), grad_features, partial, k, p,
            ACC=accumulator_dtype(features.dtype), BLOCK_K=BLOCK_K, BLOCK_P=BLOCK_P,
        )
    sums = sum_by_class(partial, classes.contiguous(), num_classes)
    grad_weights = sums[:, :k].to(class_weights.dtype).contiguous()
    grad_bias = sums[:, k].to(class_weights.dtype).contiguous()
    return grad_features, grad_weights, grad_bias
