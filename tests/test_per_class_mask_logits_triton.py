"""Triton kernels of per_class_mask_logits and per_class_mask_loss against the
plain-PyTorch references (on the CPU through TRITON_INTERPRET=1)."""
import pytest
import torch

import maskx_kernels  # noqa: F401  (registers the native ops compared against)
from conftest import TRITON_DEVICE as DEVICE
from maskx_kernels.reference import mask_logits as ref
from maskx_kernels.triton.per_class_mask_logits import (
    per_class_mask_logits_backward,
    per_class_mask_logits_forward,
)
from maskx_kernels.triton.per_class_mask_loss import (
    per_class_mask_loss_backward,
    per_class_mask_loss_forward,
)

pytestmark = pytest.mark.triton


def make(r, k, h, w, c, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = dict(
        features=torch.randn(r, k, h, w, generator=g, dtype=torch.float64),
        class_weights=torch.randn(c, k, generator=g, dtype=torch.float64) / k**0.5,
        class_bias=torch.randn(c, generator=g, dtype=torch.float64),
        agnostic_logits=torch.randn(r, h, w, generator=g, dtype=torch.float64),
        targets=torch.rand(r, h, w, generator=g, dtype=torch.float64),
    )
    out = {name: v.to(dtype=dtype, device=DEVICE) for name, v in t.items()}
    out["classes"] = torch.randint(0, c, (r,), generator=g).to(DEVICE)
    out["valid"] = (torch.arange(r) % 3 != 1).to(DEVICE)
    return out


@pytest.mark.parametrize("shape", [(3, 5, 7, 9, 4), (4, 40, 9, 10, 3), (1, 1, 1, 1, 1)])
@pytest.mark.parametrize("sigmoid", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logits(shape, sigmoid, dtype):
    a = make(*shape, dtype=dtype, seed=sum(shape))
    args = (a["features"], a["class_weights"], a["classes"], a["class_bias"], a["agnostic_logits"])
    out = per_class_mask_logits_forward(*args, sigmoid=sigmoid)
    torch.testing.assert_close(out, ref.per_class_mask_logits(*args, sigmoid=sigmoid), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        per_class_mask_logits_forward(a["features"], a["class_weights"], a["classes"]),
        ref.per_class_mask_logits(a["features"], a["class_weights"], a["classes"]),
        atol=1e-5,
        rtol=1e-5,
    )


@pytest.mark.parametrize("shape", [(5, 6, 7, 9, 3), (3, 40, 9, 10, 2)])
def test_logits_backward(shape):
    a = make(*shape, seed=1)
    grad = torch.randn(shape[0], shape[2], shape[3], device=DEVICE)
    inputs = [a[n].clone().requires_grad_() for n in ("features", "class_weights", "class_bias")]
    ref.per_class_mask_logits(inputs[0], inputs[1], a["classes"], inputs[2]).backward(grad)
    got = per_class_mask_logits_backward(grad, a["features"], a["class_weights"], a["classes"])
    for g, x in zip(got, inputs):
        torch.testing.assert_close(g, x.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("with_valid", [True, False])
def test_loss_and_backward(with_valid):
    a = make(7, 9, 6, 5, 3, seed=2)
    valid = a["valid"] if with_valid else None
    names = ("features", "class_weights", "class_bias", "agnostic_logits")
    inputs = [a[n].clone().requires_grad_() for n in names]
    expected = ref.per_class_mask_loss(inputs[0], inputs[1], a["classes"], a["targets"], inputs[2], inputs[3], valid)
    (2 * expected).backward()
    args = (a["features"], a["class_weights"], a["classes"], a["targets"], a["class_bias"], a["agnostic_logits"], valid)
    torch.testing.assert_close(per_class_mask_loss_forward(*args), expected.detach(), atol=1e-6, rtol=1e-5)
    grads = per_class_mask_loss_backward(torch.tensor(2.0, device=DEVICE), *args)
    for g, x in zip(grads, inputs):
        torch.testing.assert_close(g, x.grad, atol=1e-6, rtol=1e-5)


def test_loss_without_valid_rois():
    a = make(3, 4, 3, 3, 2, seed=3)
    none = torch.zeros(3, dtype=torch.bool, device=DEVICE)
    args = (a["features"], a["class_weights"], a["classes"], a["targets"], None, None, none)
    assert per_class_mask_loss_forward(*args).item() == 0.0
    for g in per_class_mask_loss_backward(torch.tensor(1.0, device=DEVICE), *args):
        assert torch.equal(g, torch.zeros_like(g))
