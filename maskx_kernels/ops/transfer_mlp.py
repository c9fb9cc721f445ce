"""maskx_kernels.transfer_mlp: Mask^X R-CNN's weight transfer function T.

T maps each class's detection weights to its mask weights with a small MLP shared by
all classes. Native kernel on the CPU: csrc/ops/cpu/transfer_mlp_kernel.cpp, registered
as torch.ops.maskx.transfer_mlp (schema in csrc/ops/transfer_mlp.cpp); on CUDA:
csrc/ops/cuda/transfer_mlp_kernel.cpp (cuBLAS products). Both run the layer loop of
csrc/ops/transfer_mlp_layers.cpp. Autograd is in C++
(csrc/ops/autograd/transfer_mlp_autograd.cpp). The single-launch Triton version is
maskx_kernels.triton.transfer_mlp.transfer_mlp.
"""
from collections.abc import Sequence

import torch
from torch import Tensor

from maskx_kernels._validation import check, check_float


def check_transfer_mlp_args(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], negative_slope: float) -> None:
    op = "transfer_mlp"
    check(negative_slope >= 0, lambda: f"{op}: negative_slope must be non-negative, got {negative_slope}")
    check(x.dim() == 2, lambda: f"{op}: x must be a Tensor[C, D], got shape {list(x.shape)}")
    check_float(op, "x", x)
    check(1 <= len(weights) <= 3, lambda: f"{op}: expects 1 to 3 layers, got {len(weights)} weights")
    check(len(biases) == len(weights), lambda: f"{op}: got {len(weights)} weights but {len(biases)} biases")
    width = x.shape[1]
    for i, (w, b) in enumerate(zip(weights, biases)):
        check(
            w.dim() == 2 and w.shape[1] == width,
            lambda: f"{op}: weights[{i}] must be a Tensor[D_out, {width}] to chain, got shape {list(w.shape)}",
        )
        width = w.shape[0]
        check(
            b.dim() == 1 and b.shape[0] == width,
            lambda: f"{op}: biases[{i}] must be a Tensor[{width}], got shape {list(b.shape)}",
        )
        for name, t in ((f"weights[{i}]", w), (f"biases[{i}]", b)):
            check(
                t.dtype == x.dtype and t.device == x.device,
                lambda: f"{op}: {name} must share x's dtype and device ({x.dtype}, {x.device}), got {t.dtype} on {t.device}",
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


def transfer_mlp(x: Tensor, weights: list[Tensor], biases: list[Tensor], negative_slope: float = 0.1) -> Tensor:
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
    # Every kernel checks its arguments (the CPU and CUDA ones in C++, the fake one above).
    return torch.ops.maskx.transfer_mlp(x, list(weights), list(biases), float(negative_slope))[0]
