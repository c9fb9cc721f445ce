"""maskx_kernels.transfer_mlp: Mask^X R-CNN's weight transfer function T.

T maps each class's detection weights to its mask weights with a small MLP shared by
all classes. Native kernel on the CPU: csrc/ops/cpu/transfer_mlp_kernel.cpp, registered
as torch.ops.maskx.transfer_mlp (schema in csrc/ops/transfer_mlp.cpp). On CUDA the
forward is the single-launch Triton kernel of maskx_kernels/triton/transfer_mlp.py
(the hidden layers are computed on chip and stored once for the backward pass), except
for float64 and for hidden layers wider than the kernel holds, which use one matrix
product per layer; the backward is matrix products. Autograd is in C++
(csrc/ops/autograd/transfer_mlp_autograd.cpp).
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from maskx_kernels._validation import check, check_float


def check_transfer_mlp_args(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], negative_slope: float) -> None:
    op = "transfer_mlp"
    check(negative_slope >= 0, f"{op}: negative_slope must be non-negative, got {negative_slope}")
    check(x.dim() == 2, f"{op}: x must be a Tensor[C, D], got shape {tuple(x.shape)}")
    check_float(op, "x", x)
    check(1 <= len(weights) <= 3, f"{op}: expects 1 to 3 layers, got {len(weights)} weights")
    check(len(biases) == len(weights), f"{op}: got {len(weights)} weights but {len(biases)} biases")
    width = x.shape[1]
    for i, (w, b) in enumerate(zip(weights, biases)):
        check(
            w.dim() == 2 and w.shape[1] == width,
            f"{op}: weights[{i}] must be a Tensor[D_out, {width}] to chain, got shape {tuple(w.shape)}",
        )
        width = w.shape[0]
        check(b.dim() == 1 and b.shape[0] == width, f"{op}: biases[{i}] must be a Tensor[{width}], got shape {tuple(b.shape)}")
        for name, t in ((f"weights[{i}]", w), (f"biases[{i}]", b)):
            check(
                t.dtype == x.dtype and t.device == x.device,
                f"{op}: {name} must share x's dtype and device ({x.dtype}, {x.device}), got {t.dtype} on {t.device}",
            )


@torch.library.register_fake("maskx::transfer_mlp")
def _transfer_mlp_fake(x, weights, biases, negative_slope):
    check_transfer_mlp_args(x, weights, biases, negative_slope)
    return x.new_empty((x.shape[0], weights[-1].shape[0])), [x.new_empty((x.shape[0], w.shape[0])) for w in weights[:-1]]


@torch.library.register_fake("maskx::_transfer_mlp_backward")
def _transfer_mlp_backward_fake(grad, x, hidden, weights, negative_slope):
    return (
        [torch.empty_like(w, memory_format=torch.contiguous_format) for w in weights],
        [w.new_empty((w.shape[0],)) for w in weights],
        x.new_empty((x.shape[0], weights[0].shape[0])),
    )


def _transfer_mlp_cuda(x, weights, biases, negative_slope):
    from maskx_kernels.triton.transfer_mlp import fits_on_chip, transfer_mlp_triton

    check_transfer_mlp_args(x, weights, biases, negative_slope)

    # float64 goes to the matrix products: Triton's float64 dot was measured 1e-8 off exact
    # float64 on an H200, and its tiles overflow shared memory.
    if x.dtype != torch.float64 and fits_on_chip(weights):
        return transfer_mlp_triton(x, weights, biases, negative_slope, return_hidden=True)
    # Hidden layers too wide for one program's registers: one matrix product per layer.
    hidden, h = [], x
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = F.linear(h, w, b)
        if i + 1 < len(weights):
            h = F.leaky_relu(h, negative_slope)
            hidden.append(h)
    return h, hidden


def _transfer_mlp_backward_cuda(grad, x, hidden, weights, negative_slope):
    inputs = [x, *hidden]
    grad_weights, grad_biases = [None] * len(weights), [None] * len(weights)
    g = grad
    for i in reversed(range(len(weights))):
        grad_weights[i] = g.t() @ inputs[i]
        grad_biases[i] = g.sum(0)
        if i > 0:
            g = g @ weights[i]
            g = torch.where(inputs[i] > 0, g, g * negative_slope)
    return grad_weights, grad_biases, g.clone() if len(weights) == 1 else g


torch.library.register_kernel("maskx::transfer_mlp", "cuda", _transfer_mlp_cuda)
torch.library.register_kernel("maskx::_transfer_mlp_backward", "cuda", _transfer_mlp_backward_cuda)


def transfer_mlp(x: Tensor, weights: List[Tensor], biases: List[Tensor], negative_slope: float = 0.1) -> Tensor:
    """Applies T, a 1- to 3-layer MLP, to every row of ``x`` in one call.

    Layer i computes ``h @ weights[i].T + biases[i]`` and is followed by
    LeakyReLU(negative_slope) unless it is the last layer (``negative_slope=0`` is ReLU).

    Args:
        x: Tensor[C, D_in], one row per class (see :func:`detection_embedding`).
        weights: 1 to 3 tensors, weights[i] of shape [D_{i+1}, D_i] (nn.Linear layout).
        biases: one Tensor[D_{i+1}] per layer.
        negative_slope: LeakyReLU slope of the hidden layers, >= 0.

    Returns:
        Tensor[C, D_out]: one mask weight row per class. Differentiable with respect to
        the weights, the biases and ``x`` when it requires grad.
    """
    # Every kernel checks its arguments (the CPU one in C++, the CUDA and fake ones above).
    return torch.ops.maskx.transfer_mlp(x, list(weights), list(biases), float(negative_slope))[0]
