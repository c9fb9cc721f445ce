"""Triton kernel of transfer_mlp against the plain-PyTorch chain and the native op (on
the CPU through TRITON_INTERPRET=1)."""
import pytest
import torch

import maskx_kernels  # the native ops compared against
from conftest import TRITON_DEVICE as DEVICE
from conftest import assert_same_gradients
from maskx_kernels.reference import transfer_mlp as ref_mlp
from maskx_kernels.triton.transfer_mlp import fits_on_chip, transfer_mlp_forward

pytestmark = pytest.mark.triton


def make_mlp(widths, classes, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(classes, widths[0], generator=g, dtype=torch.float64)
    weights = [torch.randn(o, i, generator=g, dtype=torch.float64) / i**0.5 for i, o in zip(widths[:-1], widths[1:])]
    biases = [torch.randn(w.shape[0], generator=g, dtype=torch.float64) for w in weights]
    cast = lambda t: t.to(dtype=dtype, device=DEVICE)  # noqa: E731
    return cast(x), [cast(w) for w in weights], [cast(b) for b in biases]


# float64 only in the interpreter: on a GPU the op sends float64 to matrix products
# (Triton's float64 dot is not exact there).
DTYPES = [torch.float32, torch.float64] if DEVICE == "cpu" else [torch.float32]


@pytest.mark.parametrize("widths", [(40, 24), (70, 20, 19), (33, 16, 40, 9), (80, 256, 100)])
@pytest.mark.parametrize("classes", [1, 37])
@pytest.mark.parametrize("dtype", DTYPES)
def test_transfer_mlp(widths, classes, dtype):
    x, weights, biases = make_mlp(widths, classes, dtype, seed=len(widths))
    out = transfer_mlp_forward(x, weights, biases, 0.1)
    expected = ref_mlp.transfer_mlp(x, weights, biases, 0.1)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    native, native_hidden = torch.ops.maskx.transfer_mlp(x.cpu(), [w.cpu() for w in weights], [b.cpu() for b in biases], 0.1)
    torch.testing.assert_close(out, native.to(DEVICE), atol=1e-4, rtol=1e-4)
    out_again, hidden = transfer_mlp_forward(x, weights, biases, 0.1, return_hidden=True)
    assert torch.equal(out_again, out) and len(hidden) == len(native_hidden)
    for h, expected in zip(hidden, native_hidden):
        torch.testing.assert_close(h, expected.to(DEVICE), atol=1e-4, rtol=1e-4)


def test_transfer_mlp_rejects_wide_hidden_layers():
    x, weights, biases = make_mlp((8, 300, 4), 3)
    assert not fits_on_chip(weights)
    with pytest.raises(ValueError, match="hidden"):
        transfer_mlp_forward(x, weights, biases)


def test_first_layer_is_split_to_fill_the_device():
    """81 classes of 5120-d input are 3 row blocks: the first layer is split along its
    input so that the device gets more programs; a 5120-wide input allows 160 slices."""
    from maskx_kernels.triton.transfer_mlp import BLOCK_K, MAX_SPLITS, _num_splits

    splits, k_chunk = _num_splits(3, 5120, torch.device("cpu"))
    assert splits > 1 and k_chunk % BLOCK_K == 0 and (splits - 1) * k_chunk < 5120 <= splits * k_chunk
    assert _num_splits(1, 20, torch.device("cpu")) == (1, BLOCK_K)
    assert _num_splits(1, 10**6, torch.device("cpu"))[0] <= MAX_SPLITS


@pytest.mark.parametrize("widths", [(7, 5), (7, 6, 5), (9, 8, 6, 4)])
def test_differentiable_transfer_mlp_matches_native_autograd(widths):
    from maskx_kernels.triton.transfer_mlp import transfer_mlp

    x, weights, biases = make_mlp(widths, classes=5, dtype=torch.float64, seed=len(widths))
    params = [t.requires_grad_() for t in (x, *weights, *biases)]
    n = len(weights)

    def run(op, x, *p):
        return op(x, list(p[:n]), list(p[n:]), 0.1)

    assert torch.autograd.gradcheck(lambda *p: run(transfer_mlp, *p), params)
    assert_same_gradients(lambda *p: run(transfer_mlp, *p), lambda *p: run(maskx_kernels.transfer_mlp, *p), params)
    torch.library.opcheck(torch.ops.maskx_triton.transfer_mlp.default, (x, weights, biases, 0.1))
