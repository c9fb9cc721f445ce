"""Triton kernel of transfer_mlp: the whole 1- to 3-layer MLP in one launch.

T's input is wide (5120 for cls+box) and it has few rows (C classes), so rows alone give
a GPU too few programs. The first layer is therefore split along its input (split-K):
program (row block, split) multiplies its rows by one K slice of the first weight matrix
and stores the partial product. The program that finishes a row block last (counted with
an atomic) adds the row block's partials in split order, so the result does not depend
on which program came last (deterministic), then applies the bias and activation and
carries the rows through the remaining layers with each hidden layer in registers
(padded to a power of two, at most MAX_HIDDEN wide; stored only when the backward pass
needs it). A 1-layer T instead splits the output columns across programs.

transfer_mlp_forward is the forward launcher. T's backward pass is a chain of plain matrix
products, which the native op already runs with cuBLAS (or on the CPU), so
transfer_mlp_backward runs torch.ops.maskx._transfer_mlp_backward on the hidden layers the
forward kernel stored. transfer_mlp is differentiable, through the custom op
torch.ops.maskx_triton.transfer_mlp, whose autograd mirrors the native one
(csrc/ops/autograd/transfer_mlp_autograd.cpp).
"""
from collections.abc import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

from maskx_kernels.ops.transfer_mlp import check_transfer_mlp_args
from maskx_kernels.triton._utils import accumulator_dtype, on_device, tl_accumulator_dtype

# Tile sizes and split limits: the fastest of a sweep of 24 configurations on an H200
# (C = 81, 5120 -> 256 -> 256, IEEE float32 products).
BLOCK_C = 16
BLOCK_K = 32
MAX_HIDDEN = 256
# Programs to aim for per multiprocessor when choosing the number of K splits.
PROGRAMS_PER_SM = 1
MAX_SPLITS = 64


def _padded(width: int) -> int:
    return max(16, triton.next_power_of_2(width))


def fits_on_chip(weights: Sequence[Tensor]) -> bool:
    """Whether every hidden layer fits one program's registers."""
    return all(_padded(w.shape[0]) <= MAX_HIDDEN for w in weights[:-1])


@triton.jit
def _leaky_relu(h, slope):
    return tl.where(h > 0, h, h * slope)


@triton.jit
def _input_product(x_ptr, w_ptr, rows, rmask, n0, k_start, k_end, D_IN, D_OUT,
                   BLOCK_C: tl.constexpr, WIDTH: tl.constexpr, BLOCK_K: tl.constexpr, ACC: tl.constexpr,
                   PRECISION: tl.constexpr):
    """Columns [n0, n0 + WIDTH) of x[rows, k_start:k_end] @ w[:, k_start:k_end].T (no bias)."""
    n = n0 + tl.arange(0, WIDTH)
    nmask = n < D_OUT
    acc = tl.zeros((BLOCK_C, WIDTH), dtype=ACC)
    for k0 in range(k_start, k_end, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        kmask = k < k_end
        xt = tl.load(x_ptr + rows[:, None] * D_IN + k[None, :], mask=rmask[:, None] & kmask[None, :], other=0.0)
        wt = tl.load(w_ptr + n[None, :] * D_IN + k[:, None], mask=kmask[:, None] & nmask[None, :], other=0.0)
        acc = tl.dot(xt, wt, acc, input_precision=PRECISION, out_dtype=ACC)
    return acc


@triton.jit
def _bias_row(b_ptr, n0, D_OUT, WIDTH: tl.constexpr, ACC: tl.constexpr):
    n = n0 + tl.arange(0, WIDTH)
    return tl.load(b_ptr + n, mask=n < D_OUT, other=0.0).to(ACC)[None, :]


@triton.jit
def _next_layer(h, w_ptr, b_ptr, n0, D_IN, D_OUT, IN_WIDTH: tl.constexpr, WIDTH: tl.constexpr, ACC: tl.constexpr,
                PRECISION: tl.constexpr):
    """Columns [n0, n0 + WIDTH) of h @ w.T + b for an on-chip h of IN_WIDTH columns."""
    k = tl.arange(0, IN_WIDTH)
    n = n0 + tl.arange(0, WIDTH)
    nmask = n < D_OUT
    wt = tl.load(w_ptr + n[None, :] * D_IN + k[:, None], mask=(k < D_IN)[:, None] & nmask[None, :], other=0.0)
    out = tl.dot(h.to(wt.dtype), wt, input_precision=PRECISION, out_dtype=ACC)
    return out + _bias_row(b_ptr, n0, D_OUT, WIDTH, ACC)


@triton.jit
def _store_block(out_ptr, y, rows, rmask, n0, D_OUT, WIDTH: tl.constexpr):
    n = n0 + tl.arange(0, WIDTH)
    mask = rmask[:, None] & (n < D_OUT)[None, :]
    tl.store(out_ptr + rows[:, None] * D_OUT + n[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _remaining_layers(
    h1, rows, rmask, b0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, h1_ptr, h2_ptr, D1, D2, D3, slope,
    NUM_LAYERS: tl.constexpr, STORE_HIDDEN: tl.constexpr, BLOCK_N: tl.constexpr, P1: tl.constexpr,
    P2: tl.constexpr, ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    """Layers 2 and 3 of rows whose first-layer product (no bias yet) is h1."""
    h1 = _leaky_relu(h1 + _bias_row(b0_ptr, 0, D1, P1, ACC), slope)
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


@triton.jit
def _transfer_mlp_forward_kernel(
    x_ptr, w0_ptr, b0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, h1_ptr, h2_ptr,
    partial_ptr, arrivals_ptr, C, D0, D1, D2, D3, slope, splits, k_chunk,
    NUM_LAYERS: tl.constexpr, STORE_HIDDEN: tl.constexpr, SPLIT_K: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, P1: tl.constexpr,
    P2: tl.constexpr, ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    row_block = tl.program_id(0)
    rows = row_block.to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C)
    rmask = rows < C
    if NUM_LAYERS == 1:
        # Program axis 1 is a block of output columns.
        n0 = tl.program_id(1) * BLOCK_N
        y = _input_product(x_ptr, w0_ptr, rows, rmask, n0, 0, D0, D0, D1, BLOCK_C, BLOCK_N, BLOCK_K, ACC, PRECISION)
        _store_block(out_ptr, y + _bias_row(b0_ptr, n0, D1, BLOCK_N, ACC), rows, rmask, n0, D1, BLOCK_N)
    elif SPLIT_K:
        # Program axis 1 is a slice of the first layer's input.
        split = tl.program_id(1)
        k_start = split * k_chunk
        part = _input_product(x_ptr, w0_ptr, rows, rmask, 0, k_start, tl.minimum(k_start + k_chunk, D0), D0, D1,
                              BLOCK_C, P1, BLOCK_K, ACC, PRECISION)
        tile = tl.arange(0, BLOCK_C)[:, None] * P1 + tl.arange(0, P1)[None, :]
        block_partials = partial_ptr + row_block.to(tl.int64) * splits * BLOCK_C * P1
        tl.store(block_partials + split * BLOCK_C * P1 + tile, part)
        # Every thread's partial is stored before the release; the acquire makes the
        # other programs' partials visible to the last one.
        tl.debug_barrier()
        arrived = tl.atomic_add(arrivals_ptr + row_block, 1, sem="acq_rel")
        if arrived == splits - 1:
            h1 = tl.zeros((BLOCK_C, P1), dtype=ACC)
            for s in range(0, splits):
                h1 += tl.load(block_partials + s * BLOCK_C * P1 + tile, cache_modifier=".cg")
            _remaining_layers(h1, rows, rmask, b0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, h1_ptr, h2_ptr, D1, D2,
                              D3, slope, NUM_LAYERS, STORE_HIDDEN, BLOCK_N, P1, P2, ACC, PRECISION)
    else:
        h1 = _input_product(x_ptr, w0_ptr, rows, rmask, 0, 0, D0, D0, D1, BLOCK_C, P1, BLOCK_K, ACC, PRECISION)
        _remaining_layers(h1, rows, rmask, b0_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, h1_ptr, h2_ptr, D1, D2, D3,
                          slope, NUM_LAYERS, STORE_HIDDEN, BLOCK_N, P1, P2, ACC, PRECISION)


def _num_splits(row_blocks: int, d_in: int, device: torch.device) -> tuple[int, int]:
    """(splits, k_chunk): enough K slices of BLOCK_K multiples to give every
    multiprocessor PROGRAMS_PER_SM programs, at most MAX_SPLITS."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4
    wanted = triton.cdiv(PROGRAMS_PER_SM * sms, row_blocks)
    splits = max(1, min(wanted, MAX_SPLITS, triton.cdiv(d_in, BLOCK_K)))
    k_chunk = triton.cdiv(triton.cdiv(d_in, splits), BLOCK_K) * BLOCK_K
    return triton.cdiv(d_in, k_chunk), k_chunk


def _precision(x: Tensor) -> str:
    """float32 products: plain TF32 where torch allows it, else three TF32 products per
    product ("tf32x3", float32-level accuracy on tensor cores); other dtypes exact."""
    if x.dtype != torch.float32:
        return "ieee"
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "tf32x3"


def _launch_forward(x, weights, biases, negative_slope, return_hidden):
    """The forward kernel on arguments the caller has checked."""
    num_layers = len(weights)
    widths = [x.shape[1]] + [w.shape[0] for w in weights]
    out = x.new_empty((x.shape[0], widths[-1]))
    hidden = [x.new_empty((x.shape[0], w)) for w in widths[1:-1]]
    if out.numel() == 0:
        return out, hidden
    row_blocks = triton.cdiv(x.shape[0], BLOCK_C)
    block_n = min(64, _padded(widths[-1]))
    p1 = _padded(widths[1])
    if num_layers == 1:
        splits, k_chunk, grid_1 = 1, widths[0], triton.cdiv(widths[1], block_n)
    else:
        splits, k_chunk = _num_splits(row_blocks, widths[0], x.device)
        grid_1 = splits
    partials = torch.empty(
        (row_blocks, splits, BLOCK_C, p1) if splits > 1 else (1,), dtype=accumulator_dtype(x.dtype), device=x.device
    )
    arrivals = torch.zeros(row_blocks if splits > 1 else 1, dtype=torch.int32, device=x.device)
    # Unused layer slots get any valid pointer; the kernel never reads them.
    params = [t.contiguous() for pair in zip(weights, biases) for t in pair]
    params += [params[0]] * (6 - len(params))
    hidden_ptrs = hidden + [out] * (2 - len(hidden))
    dims = widths + [1] * (4 - len(widths))
    with on_device(x):
        _transfer_mlp_forward_kernel[(row_blocks, grid_1)](
            x.contiguous(), *params, out, *hidden_ptrs, partials, arrivals, x.shape[0], *dims, float(negative_slope),
            splits, k_chunk, NUM_LAYERS=num_layers, STORE_HIDDEN=return_hidden, SPLIT_K=splits > 1, BLOCK_C=BLOCK_C,
            BLOCK_K=BLOCK_K, BLOCK_N=block_n, P1=p1, P2=_padded(widths[2]) if num_layers > 2 else 16,
            ACC=tl_accumulator_dtype(x.dtype), PRECISION=_precision(x),
        )
    return out, hidden


def _launch_backward(grad, x, hidden, weights, negative_slope):
    """The native backward op (see the module's docstring) on arguments the caller has
    checked: the gradients of the weights, of the biases, and of the first layer's output
    (x's gradient is that times weights[0])."""
    return torch.ops.maskx._transfer_mlp_backward(grad, x, list(hidden), list(weights), float(negative_slope))


def _check_args(x, weights, biases, negative_slope):
    check_transfer_mlp_args(x, weights, biases, negative_slope)
    if not fits_on_chip(weights):
        raise ValueError(f"transfer_mlp: hidden layers must be at most {MAX_HIDDEN} wide for the Triton kernel")


@torch.library.custom_op("maskx_triton::transfer_mlp", mutates_args=())
def _transfer_mlp_op(
    x: Tensor, weights: list[Tensor], biases: list[Tensor], negative_slope: float
) -> tuple[Tensor, list[Tensor]]:
    return _launch_forward(x, weights, biases, negative_slope, return_hidden=True)


@torch.library.custom_op("maskx_triton::_transfer_mlp_backward", mutates_args=())
def _transfer_mlp_backward_op(
    grad: Tensor, x: Tensor, hidden: list[Tensor], weights: list[Tensor], negative_slope: float
) -> tuple[list[Tensor], list[Tensor], Tensor]:
    return _launch_backward(grad, x, hidden, weights, negative_slope)


@_transfer_mlp_op.register_fake
def _transfer_mlp_fake(x, weights, biases, negative_slope):
    return x.new_empty((x.shape[0], weights[-1].shape[0])), [x.new_empty((x.shape[0], w.shape[0])) for w in weights[:-1]]


@_transfer_mlp_backward_op.register_fake
def _transfer_mlp_backward_fake(grad, x, hidden, weights, negative_slope):
    return (
        [torch.empty_like(w, memory_format=torch.contiguous_format) for w in weights],
        [w.new_empty((w.shape[0],)) for w in weights],
        x.new_empty((x.shape[0], weights[0].shape[0])),
    )


def _setup_context(ctx, inputs, output):
    x, weights, biases, negative_slope = inputs
    _, hidden = output
    ctx.save_for_backward(x, *hidden, *weights)
    ctx.num_layers = len(weights)
    ctx.negative_slope = negative_slope


def _backward(ctx, grad, grad_hidden):
    # The hidden layers are saved activations, not outputs anyone differentiates.
    x, *rest = ctx.saved_tensors
    hidden, weights = rest[: ctx.num_layers - 1], rest[ctx.num_layers - 1:]
    grad_weights, grad_biases, grad_first = torch.ops.maskx_triton._transfer_mlp_backward(
        grad, x, hidden, weights, ctx.negative_slope
    )
    grad_x = grad_first.mm(weights[0]) if ctx.needs_input_grad[0] else None
    return grad_x, grad_weights, grad_biases, None


torch.library.register_autograd("maskx_triton::transfer_mlp", _backward, setup_context=_setup_context)


def transfer_mlp_forward(
    x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], negative_slope: float = 0.1, return_hidden: bool = False
) -> Tensor | tuple[Tensor, list[Tensor]]:
    """The forward launcher: :func:`transfer_mlp`'s result, not differentiable. Hidden
    layers must be at most MAX_HIDDEN wide (see fits_on_chip). With return_hidden, also
    returns the hidden layers' activations (what the backward pass needs)."""
    _check_args(x, weights, biases, negative_slope)
    out, hidden = _launch_forward(x, weights, biases, negative_slope, return_hidden)
    return (out, hidden) if return_hidden else out


def transfer_mlp_backward(
    grad: Tensor, x: Tensor, hidden: Sequence[Tensor], weights: Sequence[Tensor], negative_slope: float = 0.1
) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """The backward launcher, with the arguments and results of
    torch.ops.maskx._transfer_mlp_backward: from the output's gradient ``grad`` and the
    hidden layers that ``transfer_mlp_forward(..., return_hidden=True)`` returned, the
    gradients of the weights, of the biases and of the first layer's output."""
    # The native op checks its arguments.
    return _launch_backward(grad, x, hidden, weights, negative_slope)


def transfer_mlp(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], negative_slope: float = 0.1) -> Tensor:
    """:func:`maskx_kernels.transfer_mlp` (same arguments and result; hidden layers at
    most MAX_HIDDEN wide) in one launch, differentiable with respect to the weights, the
    biases and ``x``."""
    _check_args(x, weights, biases, negative_slope)
    return torch.ops.maskx_triton.transfer_mlp(x, list(weights), list(biases), float(negative_slope))[0]
