"""Triton kernels of per_class_mask_logits and per_class_mask_loss against the
plain-PyTorch references (on the CPU through TRITON_INTERPRET=1)."""
import pytest
import torch

import maskx_kernels  # the native ops compared against
from conftest import TRITON_DEVICE as DEVICE
from conftest import assert_same_gradients
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


def autograd_inputs(seed=0):
    """Small float64 inputs (gradcheck) with a repeated class and one class unused."""
    g = torch.Generator().manual_seed(seed)
    r, k, h, w, c = 4, 5, 3, 4, 3
    leaf = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64, device=DEVICE).requires_grad_()  # noqa: E731
    return dict(
        features=leaf(r, k, h, w),
        class_weights=leaf(c, k),
        class_bias=leaf(c),
        agnostic_logits=leaf(r, h, w),
        classes=torch.tensor([0, 2, 0, 2], device=DEVICE),
        targets=torch.rand(r, h, w, generator=g, dtype=torch.float64).to(DEVICE),
        valid=torch.tensor([True, False, True, True], device=DEVICE),
    )


@pytest.mark.parametrize("sigmoid", [False, True])
def test_differentiable_logits_match_native_autograd(sigmoid):
    from maskx_kernels.triton.per_class_mask_logits import per_class_mask_logits

    t = autograd_inputs()
    differentiable = ("features", "class_weights", "class_bias", "agnostic_logits")
    args = [t[n] for n in differentiable]

    def logits(op, features, class_weights, class_bias, agnostic_logits):
        return op(features, class_weights, t["classes"], class_bias, agnostic_logits, sigmoid)

    assert torch.autograd.gradcheck(lambda *a: logits(per_class_mask_logits, *a), args)
    assert_same_gradients(
        lambda *a: logits(per_class_mask_logits, *a), lambda *a: logits(maskx_kernels.per_class_mask_logits, *a), args
    )
    torch.library.opcheck(
        torch.ops.maskx_triton.per_class_mask_logits.default,
        (t["features"], t["class_weights"], t["classes"], t["class_bias"], t["agnostic_logits"], sigmoid),
    )


@pytest.mark.parametrize("with_valid", [False, True])
def test_differentiable_loss_matches_native_autograd(with_valid):
    from maskx_kernels.triton.per_class_mask_loss import per_class_mask_loss

    t = autograd_inputs(seed=1)
    valid = t["valid"] if with_valid else None
    differentiable = ("features", "class_weights", "class_bias", "agnostic_logits")
    args = [t[n] for n in differentiable]

    def loss(op, features, class_weights, class_bias, agnostic_logits):
        return op(features, class_weights, t["classes"], t["targets"], class_bias, agnostic_logits, valid)

    assert torch.autograd.gradcheck(lambda *a: loss(per_class_mask_loss, *a), args)
    assert_same_gradients(
        lambda *a: loss(per_class_mask_loss, *a), lambda *a: loss(maskx_kernels.per_class_mask_loss, *a), args
    )
    torch.library.opcheck(
        torch.ops.maskx_triton.per_class_mask_loss.default,
        (t["features"], t["class_weights"], t["classes"], t["targets"], t["class_bias"], t["agnostic_logits"], valid),
    )
