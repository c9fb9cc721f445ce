"""CUDA paths of per_class_mask_logits, per_class_mask_loss and transfer_mlp against the
plain-PyTorch references in float64. Skipped without a CUDA device."""
import pytest
import torch

import maskx_kernels as mk
from mask_logits_cases import TOL, make, reference_in_float64
from maskx_kernels.reference import mask_logits as ref
from maskx_kernels.reference import transfer_mlp as ref_mlp

pytestmark = pytest.mark.needs_cuda
DEVICE = "cuda"
SHAPES = [(1, 1, 1, 1, 1), (3, 5, 7, 9, 4), (6, 17, 13, 11, 81), (9, 256, 28, 28, 3002), (5, 33, 2, 5, 2)]


def on_device(*tensors):
    return [t.to(DEVICE) if t is not None else None for t in tensors]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("sigmoid", [False, True])
def test_logits_match_reference(shape, dtype, sigmoid):
    f, w, cls, b, a, _, _ = make(*shape, dtype=dtype, seed=sum(shape))
    out = mk.per_class_mask_logits(*on_device(f, w, cls, b, a), sigmoid=sigmoid)
    expected = reference_in_float64(ref.per_class_mask_logits, f, w, cls, b, a, sigmoid=sigmoid)
    assert out.device.type == "cuda" and out.dtype == dtype and out.shape == (shape[0], shape[2], shape[3])
    torch.testing.assert_close(out.cpu().double(), expected, **TOL[dtype])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_logits_backward_matches_reference(shape, dtype):
    f, w, cls, b, a, _, _ = make(*shape, dtype=dtype, seed=sum(shape) + 1)
    grad = torch.randn(shape[0], shape[2], shape[3], dtype=torch.float64).to(dtype)
    inputs = [t.to(DEVICE).requires_grad_() for t in (f, w, b, a)]
    mk.per_class_mask_logits(inputs[0], inputs[1], cls.to(DEVICE), inputs[2], inputs[3]).backward(grad.to(DEVICE))
    expected_inputs = [t.double().requires_grad_() for t in (f, w, b, a)]
    ref.per_class_mask_logits(expected_inputs[0], expected_inputs[1], cls, expected_inputs[2], expected_inputs[3]).backward(
        grad.double()
    )
    # Gradients of class weights sum over RoIs and pixels: looser in reduced precision.
    tol = TOL[dtype] if dtype != torch.bfloat16 else dict(atol=0.5, rtol=5e-2)
    for x, y in zip(inputs, expected_inputs):
        torch.testing.assert_close(x.grad.cpu().double(), y.grad, **tol)


def test_logits_backward_is_deterministic():
    f, w, cls = on_device(*make(64, 32, 14, 14, 5, seed=3)[:3])
    grad = torch.randn(64, 14, 14, device=DEVICE)
    results = []
    for _ in range(2):
        results.append(torch.ops.maskx._per_class_mask_logits_backward(grad, f, w, cls))
    for first, second in zip(*results):
        assert torch.equal(first, second)


def test_logits_gradcheck():
    f, w, cls, b, a, _, _ = make(3, 4, 3, 2, 5, dtype=torch.float64, seed=4)
    inputs = [t.to(DEVICE).requires_grad_() for t in (f, w, b, a)]
    assert torch.autograd.gradcheck(lambda f, w, b, a: mk.per_class_mask_logits(f, w, cls.to(DEVICE), b, a), inputs)


@pytest.mark.parametrize("shape", [(6, 5, 4, 3, 4), (12, 17, 9, 7, 5), (7, 256, 28, 28, 81)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_loss_matches_reference(shape, dtype):
    f, w, cls, b, a, t, v = make(*shape, dtype=dtype, seed=sum(shape))
    v[0] = True
    inputs = [x.to(DEVICE).requires_grad_() for x in (f, w, b, a)]
    loss = mk.per_class_mask_loss(inputs[0], inputs[1], cls.to(DEVICE), t.to(DEVICE), inputs[2], inputs[3], v.to(DEVICE))
    loss.backward()
    expected_inputs = [x.double().requires_grad_() for x in (f, w, b, a)]
    expected = ref.per_class_mask_loss(
        expected_inputs[0], expected_inputs[1], cls, t.double(), expected_inputs[2], expected_inputs[3], v
    )
    expected.backward()
    torch.testing.assert_close(loss.cpu().double(), expected.detach(), **TOL[dtype])
    tol = TOL[dtype] if dtype != torch.bfloat16 else dict(atol=5e-2, rtol=5e-2)
    for x, y in zip(inputs, expected_inputs):
        torch.testing.assert_close(x.grad.cpu().double(), y.grad, **tol)


def test_loss_without_valid_rois_is_a_differentiable_zero():
    f, w, cls, b, a, t, _ = on_device(*make(4, 6, 5, 5, 3, seed=5))
    f.requires_grad_()
    loss = mk.per_class_mask_loss(f, w, cls, t, b, a, torch.zeros(4, dtype=torch.bool, device=DEVICE))
    loss.backward()
    assert loss.item() == 0 and torch.equal(f.grad, torch.zeros_like(f))


def test_loss_gradcheck():
    f, w, cls, b, a, t, v = make(4, 3, 3, 2, 5, dtype=torch.float64, seed=6)
    v[0] = True
    inputs = [x.to(DEVICE).requires_grad_() for x in (f, w, b, a)]
    cls, t, v = on_device(cls, t, v)
    assert torch.autograd.gradcheck(lambda f, w, b, a: mk.per_class_mask_loss(f, w, cls, t, b, a, v), inputs)


def test_opcheck():
    f, w, cls, b, a, t, v = on_device(*make(5, 7, 4, 3, 6, seed=7))
    inputs = [x.clone().requires_grad_() for x in (f, w, b, a)]
    torch.library.opcheck(torch.ops.maskx.per_class_mask_logits.default, (inputs[0], inputs[1], cls, inputs[2], inputs[3], True))
    torch.library.opcheck(torch.ops.maskx.per_class_mask_loss.default, (inputs[0], inputs[1], cls, t, inputs[2], inputs[3], v))
    x, weights, biases = make_mlp((40, 24, 19))
    params = [p.clone().requires_grad_() for p in weights + biases]
    torch.library.opcheck(torch.ops.maskx.transfer_mlp.default, (x, params[:2], params[2:], 0.1))


def test_bad_class_and_target_values():
    f, w, cls, b, a, t, v = on_device(*make(3, 4, 5, 5, 3, seed=8))
    with pytest.raises(IndexError, match="class 3"):
        mk.per_class_mask_logits(f, w, torch.tensor([0, 3, 1], device=DEVICE), b, a)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mk.per_class_mask_loss(f, w, cls, t + 1.5, b, a, v)
    with pytest.raises(ValueError, match="on cpu"):
        mk.per_class_mask_logits(f, w.cpu(), cls, b, a)


def test_empty():
    f, w, cls, b, a, t, v = on_device(*make(0, 8, 6, 5, 7))
    assert mk.per_class_mask_logits(f, w, cls, b, a).shape == (0, 6, 5)
    assert mk.per_class_mask_loss(f, w, cls, t, b, a, v).item() == 0


def make_mlp(widths, dtype=torch.float32, classes=13, seed=0):
    """Biases of magnitude 1 to 2 and either sign dominate the weighted sums (about 0.1),
    so that no pre-activation lies within rounding of LeakyReLU's kink, where the float32
    result and the float64 reference may take different slopes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(classes, widths[0], generator=g, dtype=torch.float64).to(dtype)
    weights = [
        (torch.randn(o, i, generator=g, dtype=torch.float64) * 0.1 / i**0.5).to(dtype)
        for i, o in zip(widths[:-1], widths[1:])
    ]
    biases = [
        (torch.randn(w.shape[0], generator=g, dtype=torch.float64).sign() * (1 + torch.rand(w.shape[0], generator=g))).to(dtype)
        for w in weights
    ]
    return on_device(x) + [on_device(*weights), on_device(*biases)]


@pytest.mark.parametrize("widths", [(7, 5), (40, 24, 19), (33, 16, 17, 9), (5120, 256, 256), (5120, 1024, 256)])
@pytest.mark.parametrize("classes", [1, 81, 3002])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_transfer_mlp_matches_reference(widths, classes, dtype):
    x, weights, biases = make_mlp(widths, dtype, classes, seed=classes)
    params = [p.requires_grad_() for p in weights + biases]
    out = mk.transfer_mlp(x, weights, biases, 0.1)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected_params = [p.detach().cpu().double().requires_grad_() for p in params]
    n = len(weights)
    expected = ref_mlp.transfer_mlp(x.cpu().double(), expected_params[:n], expected_params[n:], 0.1)
    expected.backward(grad.cpu().double())
    # float32 matrix products follow torch.backends.cuda.matmul.allow_tf32 (off by default).
    tol = dict(atol=2e-3, rtol=2e-3) if dtype == torch.float32 else TOL[dtype]
    torch.testing.assert_close(out.detach().cpu().double(), expected.detach(), **tol)
    for p, e in zip(params, expected_params):
        torch.testing.assert_close(p.grad.cpu().double(), e.grad, **tol)


def test_native_checks_raise():
    f, w, cls = on_device(*make(2, 3, 4, 4, 5)[:3])
    with pytest.raises(ValueError, match="grad must be a"):
        torch.ops.maskx._per_class_mask_logits_backward(torch.randn(2, 4, 5, device=DEVICE), f, w, cls)
    with pytest.raises(ValueError, match="classes are on"):
        torch.ops.maskx.per_class_mask_logits(f, w, cls.cpu(), None, None, False)
