"""Weight transfer function T on a GPU (cls+box embeddings, 2 layers, hidden 256,
LeakyReLU 0.1; C = 81 and 3002): maskx.transfer_mlp (cuBLAS products, one dispatch) vs
the eager chain of F.linear / F.leaky_relu, forward and forward+backward, and the
single-launch Triton kernel (forward only: its backward is the native op's); the cases
of bench_transfer_mlp.py, on the device. Skipped without a CUDA device."""
import pytest
import torch

from benchmarks.bench_transfer_mlp import IMPLS, WIDTHS, make_inputs
from benchmarks.timing import cuda_synchronized, run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROUNDS = 50


def triton_transfer_mlp(x, weights, biases, negative_slope):
    from maskx_kernels.triton.transfer_mlp import transfer_mlp_forward

    return transfer_mlp_forward(x, weights, biases, negative_slope)


FORWARD_IMPLS = {**IMPLS, "maskx-triton": triton_transfer_mlp}


def _on_device(classes):
    x, weights, biases = make_inputs(classes)
    return x.cuda(), [w.detach().cuda().requires_grad_() for w in weights], [b.detach().cuda().requires_grad_() for b in biases]


@pytest.mark.parametrize("impl", list(FORWARD_IMPLS))
@pytest.mark.parametrize("classes", [81, 3002])
def test_forward(benchmark, impl, classes):
    x, weights, biases = _on_device(classes)
    fn = FORWARD_IMPLS[impl]

    def forward():
        with torch.no_grad():
            return fn(x, weights, biases, 0.1)

    run(benchmark, f"transfer_mlp gpu forward: {classes} classes", impl, cuda_synchronized(forward), ROUNDS)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("classes", [81, 3002])
def test_forward_backward(benchmark, impl, classes):
    x, weights, biases = _on_device(classes)
    grad = torch.randn(classes, WIDTHS[-1], device="cuda")
    fn = IMPLS[impl]

    def step():
        for p in weights + biases:
            p.grad = None
        fn(x, weights, biases, 0.1).backward(grad)

    run(benchmark, f"transfer_mlp gpu forward+backward: {classes} classes", impl, cuda_synchronized(step), ROUNDS)
