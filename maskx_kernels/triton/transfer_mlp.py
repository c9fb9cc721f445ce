"""Triton kernel of transfer_mlp: the whole 1- to 3-layer MLP in one launch.

Each program owns BLOCK_C class rows and carries them through every layer: the first
layer streams the input and the first weight matrix in K blocks, each hidden layer stays
in registers (padded to a power of two, at most MAX_HIDDEN wide; it is written out only
when the backward pass needs it), and the last layer is produced in column blocks. No
atomics: every output is written by one program.
"""
from typing import List, Sequence, Tuple, Union

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_C = 32
BLOCK_K = 32
MAX_HIDDEN = 256


def _padded(width: int) -> int:
    return max(16, triton.next_power_of_2(width))


def fits_on_chip(weights: Sequence[Tensor]) -> bool:
    """Whether every hidden layer fits one program's registers."""
    return all(_padded(w.shape[0]) <= MAX_HIDDEN for w in weights[:-1])


@triton.jit
def _leaky_relu(h, slope):
    return tl.where(h > 0, h, h * slope)


@triton.jit
def _input_layer(x_ptr, w_ptr, b_ptr, rows, rmask, n0, D_IN, D_OUT,
                 BLOCK_C: tl.constexpr, WIDTH: tl.constexpr, BLOCK_K: tl.constexpr, ACC: tl.constexpr,
                 PRECISION: tl.constexpr):
    """Columns [n0, n0 + WIDTH) of x[rows] @ w.T + b, streaming x and w over D_IN."""
    n = n0 + tl.arange(0, WIDTH)
    nmask = n < D_OUT
    acc = tl.zeros((BLOCK_C, WIDTH), dtype=ACC)
    for k0 in range(0, D_IN, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        kmask = k < D_IN
        xt = tl.load(x_ptr + rows[:, None] * D_IN + k[None, :], mask=rmask[:, None] & kmask[None, :], other=0.0)
        wt = tl.load(w_ptr + n[None, :] * D_IN + k[:, None], mask=kmask[:, None] & nmask[None, :], other=0.0)
        acc = tl.dot(xt, wt, acc, input_precision=PRECISION)
    return acc + tl.load(b_ptr + n, mask=nmask, other=0.0).to(ACC)[None, :]


@triton.jit
def _next_layer(h, w_ptr, b_ptr, n0, D_IN, D_OUT, IN_WIDTH: tl.constexpr, WIDTH: tl.constexpr, ACC: tl.constexpr,
                PRECISION: tl.constexpr):
    """Columns [n0, n0 + WIDTH) of h @ w.T + b for an on-chip h of IN_WIDTH columns."""
    k = tl.arange(0, IN_WIDTH)
    n = n0 + tl.arange(0, WIDTH)
    nmask = n < D_OUT
    wt = tl.load(w_ptr + n[None, :] * D_IN + k[:, None], mask=(k < D_IN)[:, None] & nmask[None, :], other=0.0)
    out = tl.dot(h.to(wt.dtype), wt, input_precision=PRECISION, out_dtype=ACC)
    return out + tl.load(b_ptr + n, mask=nmask, other=0.0).to(ACC)[None, :]


@triton.jit
def _store_block(out_ptr, y, rows, rmask, n0, D_OUT, WIDTH: tl.constexpr):
    n = n0 + tl.arange(0, WIDTH)
    mask = rmask[:, None] & (n < D_OUT)[None, :]
    tl.store(out_ptr + rows[:, None] * D_OUT + n[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _transfer_mlp_kernel(x_ptr, w0_ptr, b0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, h1_ptr, h2_ptr,
                         C, D0, D1, D2, D3, slope, NUM_LAYERS: tl.constexpr, STORE_HIDDEN: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
                         BLOCK_N: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr, ACC: tl.constexpr,
                         PRECISION: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C)
    rmask = rows < C
    if NUM_LAYERS == 1:
        for n0 in range(0, D1, BLOCK_N):
            y = _input_layer(x_ptr, w0_ptr, b0_ptr, rows, rmask, n0, D0, D1, BLOCK_C, BLOCK_N, BLOCK_K, ACC, PRECISION)
            _store_block(out_ptr, y, rows, rmask, n0, D1, BLOCK_N)
    else:
        h1 = _leaky_relu(
            _input_layer(x_ptr, w0_ptr, b0_ptr, rows, rmask, 0, D0, D1, BLOCK_C, P1, BLOCK_K, ACC, PRECISION), slope
        )
        if STORE_HIDDEN:
            _store_block(h1_ptr, h1, rows, rmask, 0, D1, P1)
        if NUM_LAYERS == 2:
            for n0 in range(0, D2, BLOCK_N):
                y = _next_layer(h1, w1_ptr, b1_ptr, n0, D1, D2, P1, BLOCK_N, ACC, PRECISION)
                _store_block(out_ptr, y, rows, rmask, n0, D2, BLOCK_N)
        else:
            h2 = _leaky_relu(_next_layer(h1, w1_ptr, b1_ptr, 0, D1, D2, P1, P2, ACC, PRECISION), slope)
            if STORE_HIDDEN:
                _store_block(h2_ptr, h2, rows, rmask, 0, D2, P2)
            for n0 in range(0, D3, BLOCK_N):
                y = _next_layer(h2, w2_ptr, b2_ptr, n0, D2, D3, P2, BLOCK_N, ACC, PRECISION)
                _store_block(out_ptr, y, rows, rmask, n0, D3, BLOCK_N)


def transfer_mlp_triton(
    x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], negative_slope: float = 0.1, return_hidden: bool = False
) -> Union[Tensor, Tuple[Tensor, List[Tensor]]]:
    """transfer_mlp (see maskx_kernels.transfer_mlp) in one launch. Hidden layers must be
    at most MAX_HIDDEN wide (see fits_on_chip). With return_hidden, also returns the
    hidden layers' activations (what the backward pass needs)."""
    if not fits_on_chip(weights):
        raise ValueError(f"transfer_mlp_triton: hidden layers must be at most {MAX_HIDDEN} wide")
    num_layers = len(weights)
    widths = [x.shape[1]] + [w.shape[0] for w in weights]
    out = x.new_empty((x.shape[0], widths[-1]))
    hidden = [x.new_empty((x.shape[0], w)) for w in widths[1:-1]]
    if out.numel() > 0:
        # Unused layer slots get any valid pointer; the kernel never reads them.
        params = [t.contiguous() for pair in zip(weights, biases) for t in pair]
        params += [params[0]] * (6 - len(params))
        hidden_ptrs = hidden + [out] * (2 - len(hidden))
        dims = widths + [1] * (4 - len(widths))
        precision = "tf32" if x.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32 else "ieee"
        _transfer_mlp_kernel[(triton.cdiv(x.shape[0], BLOCK_C),)](
            x.contiguous(), *params, out, *hidden_ptrs, x.shape[0], *dims, float(negative_slope),
            NUM_LAYERS=num_layers, STORE_HIDDEN=return_hidden, BLOCK_C=BLOCK_C, BLOCK_K=BLOCK_K,
            BLOCK_N=min(64, _padded(widths[-1])), P1=_padded(widths[1]), P2=_padded(widths[2]) if num_layers > 2 else 16,
            ACC=tl.float64 if x.dtype == torch.float64 else tl.float32, PRECISION=precision,
        )
    return (out, hidden) if return_hidden else out
