"""Weight transfer function T on cls+box embeddings (5120-d) with the paper's best
configuration (2 layers, hidden 256, LeakyReLU 0.1) for C = 81 (COCO) and 3002 (Visual
Genome) classes: maskx.transfer_mlp vs the eager chain of F.linear / F.leaky_relu,
forward and forward+backward (gradients of the MLP's weights; the input is detached).

Run: python -m pytest benchmarks/bench_transfer_mlp.py --benchmark-only --benchmark-columns=median
"""
import pytest
import torch

import maskx_kernels as mk
from maskx_kernels.reference.transfer_mlp import transfer_mlp as eager_chain

WIDTHS = (5120, 256, 256)
IMPLS = {"maskx": mk.transfer_mlp, "eager": eager_chain}


def rounds(classes):
    """More rounds where a call takes milliseconds: medians of 20 varied by 10% here."""
    return 100 if classes < 1000 else 20


def make_inputs(classes):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(classes, WIDTHS[0], generator=g)
    weights = [
        (torch.randn(o, i, generator=g) * (2 / i) ** 0.5).requires_grad_() for i, o in zip(WIDTHS[:-1], WIDTHS[1:])
    ]
    biases = [torch.zeros(w.shape[0]).requires_grad_() for w in weights]
    return x, weights, biases


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("classes", [81, 3002])
def test_forward(benchmark, impl, classes):
    x, weights, biases = make_inputs(classes)
    fn = IMPLS[impl]
    benchmark.group = f"transfer_mlp forward: {classes} classes, cls+box 2-layer"
    benchmark.extra_info["impl"] = impl
    with torch.no_grad():
        out = benchmark.pedantic(fn, args=(x, weights, biases, 0.1), rounds=rounds(classes), iterations=1, warmup_rounds=2)
    assert out.shape == (classes, WIDTHS[-1])


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("classes", [81, 3002])
def test_forward_backward(benchmark, impl, classes):
    x, weights, biases = make_inputs(classes)
    fn = IMPLS[impl]
    grad = torch.randn(classes, WIDTHS[-1])

    def step():
        for p in weights + biases:
            p.grad = None
        fn(x, weights, biases, 0.1).backward(grad)

    benchmark.group = f"transfer_mlp forward+backward: {classes} classes, cls+box 2-layer"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(step, rounds=rounds(classes), iterations=1, warmup_rounds=2)
    assert weights[0].grad.shape == (WIDTHS[1], WIDTHS[0])
