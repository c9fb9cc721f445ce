"""maskx_kernels.per_class_mask_logits and per_class_mask_loss against the explicit
all-class conv then select (maskx_kernels.reference.mask_logits)."""
import pytest
import torch
import torch.nn.functional as F

import maskx_kernels as mk
from maskx_kernels.reference import mask_logits as ref

TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-10),
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.float16: dict(atol=2e-2, rtol=2e-2),
    torch.bfloat16: dict(atol=1e-1, rtol=5e-2),
}
SHAPES = [(1, 1, 1, 1, 1), (3, 5, 7, 9, 4), (6, 17, 13, 11, 81), (4, 32, 28, 28, 3), (9, 3, 2, 5, 2)]


def make(r, k, h, w, c, dtype=torch.float32, seed=0, bias=True, agnostic=True):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(r, k, h, w, generator=g, dtype=torch.float64).to(dtype)
    class_weights = torch.randn(c, k, generator=g, dtype=torch.float64).div(k**0.5).to(dtype)
    classes = torch.randint(0, c, (r,), generator=g)
    class_bias = torch.randn(c, generator=g, dtype=torch.float64).to(dtype) if bias else None
    agn = torch.randn(r, h, w, generator=g, dtype=torch.float64).to(dtype) if agnostic else None
    targets = torch.rand(r, h, w, generator=g, dtype=torch.float64).to(dtype)
    valid = torch.rand(r, generator=g) < 0.6
    return features, class_weights, classes, class_bias, agn, targets, valid


def reference_in_float64(fn, *args, **kwargs):
    cast = [a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    return fn(*cast, **kwargs)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("sigmoid", [False, True])
def test_logits_match_reference(shape, dtype, sigmoid):
    f, w, cls, b, a, _, _ = make(*shape, dtype=dtype, seed=sum(shape))
    out = mk.per_class_mask_logits(f, w, cls, b, a, sigmoid=sigmoid)
    expected = reference_in_float64(ref.per_class_mask_logits, f, w, cls, b, a, sigmoid=sigmoid)
    assert out.dtype == dtype and out.shape == (shape[0], shape[2], shape[3])
    torch.testing.assert_close(out.double(), expected, **TOL[dtype])


@pytest.mark.parametrize("bias,agnostic", [(False, False), (True, False), (False, True)])
def test_logits_optional_inputs(bias, agnostic):
    f, w, cls, b, a, _, _ = make(5, 12, 6, 7, 9, bias=bias, agnostic=agnostic)
    torch.testing.assert_close(mk.per_class_mask_logits(f, w, cls, b, a), ref.per_class_mask_logits(f, w, cls, b, a))


def test_logits_match_torchvision_predictor():
    """torchvision's MaskRCNNPredictor path: all-class 1x1 conv, then each RoI's channel."""
    torchvision = pytest.importorskip("torchvision")
    predictor = torchvision.models.detection.mask_rcnn.MaskRCNNPredictor(16, 8, 11)
    x = torch.randn(6, 16, 7, 7)
    with torch.no_grad():
        head = predictor.relu(predictor.conv5_mask(x))
        all_logits = predictor.mask_fcn_logits(head)
        classes = torch.randint(0, 11, (6,))
        expected = all_logits[torch.arange(6), classes]
        out = mk.per_class_mask_logits(
            head, predictor.mask_fcn_logits.weight[:, :, 0, 0], classes, predictor.mask_fcn_logits.bias
        )
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_logits_noncontiguous_inputs():
    f, w, cls, b, a, _, _ = make(4, 8, 6, 5, 7)
    f_nc = f.transpose(2, 3).contiguous().transpose(2, 3)
    w_nc = w.t().contiguous().t()
    a_nc = a.transpose(1, 2).contiguous().transpose(1, 2)
    torch.testing.assert_close(mk.per_class_mask_logits(f_nc, w_nc, cls, b, a_nc), ref.per_class_mask_logits(f, w, cls, b, a))


def test_logits_empty():
    f, w, cls, b, a, _, _ = make(0, 8, 6, 5, 7)
    assert mk.per_class_mask_logits(f, w, cls, b, a).shape == (0, 6, 5)
    f.requires_grad_()
    w.requires_grad_()
    mk.per_class_mask_logits(f, w, cls, b).sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w))


@pytest.mark.parametrize("sigmoid", [False, True])
def test_logits_gradcheck(sigmoid):
    f, w, cls, b, a, _, _ = make(4, 3, 3, 2, 3, dtype=torch.float64, seed=3)
    cls = torch.tensor([2, 0, 2, 1])  # a repeated class, so weight gradients are summed
    inputs = [t.requires_grad_() for t in (f, w, b, a)]

    def fn(f, w, b, a):
        return mk.per_class_mask_logits(f, w, cls, b, a, sigmoid=sigmoid)

    assert torch.autograd.gradcheck(fn, inputs)


def test_logits_backward_matches_reference_float32():
    f, w, cls, b, a, _, _ = make(7, 20, 9, 8, 5, seed=5)
    grads = []
    for fn in (mk.per_class_mask_logits, ref.per_class_mask_logits):
        inputs = [t.clone().requires_grad_() for t in (f, w, b, a)]
        out = fn(inputs[0], inputs[1], cls, inputs[2], inputs[3])
        out.backward(torch.cos(torch.arange(out.numel(), dtype=out.dtype)).view_as(out))
        grads.append([t.grad for t in inputs])
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_logits_backward_is_deterministic():
    f, w, cls, b, a, _, _ = make(40, 24, 5, 5, 3, seed=6)
    g = torch.randn(40, 5, 5)
    first = torch.ops.maskx._per_class_mask_logits_backward(g, f, w, cls)
    torch.set_num_threads(1)
    try:
        second = torch.ops.maskx._per_class_mask_logits_backward(g, f, w, cls)
    finally:
        torch.set_num_threads(2)
    for x, y in zip(first, second):
        assert torch.equal(x, y)


def _loss_samples():
    samples = []
    for seed, shape in enumerate([(5, 4, 3, 3, 3), (7, 9, 5, 6, 4), (0, 3, 2, 2, 2)]):
        f, w, cls, b, a, t, v = make(*shape, seed=seed)
        samples.append(((f, w, cls, b, a, False), (f, w, cls, t, b, a, v)))
    return samples


def test_opcheck():
    for logits_args, loss_args in _loss_samples():
        f, w, cls, b, a, _ = logits_args
        for requires_grad in (False, True):
            inputs = [t.clone().requires_grad_(requires_grad) for t in (f, w, b, a)]
            torch.library.opcheck(
                torch.ops.maskx.per_class_mask_logits.default, (inputs[0], inputs[1], cls, inputs[2], inputs[3], True)
            )
            lf, lw, lcls, lt, lb, la, lv = loss_args
            torch.library.opcheck(torch.ops.maskx.per_class_mask_loss.default, (inputs[0], inputs[1], lcls, lt, inputs[2], inputs[3], lv))
        g = torch.randn(f.shape[0], f.shape[2], f.shape[3])
        torch.library.opcheck(torch.ops.maskx._per_class_mask_logits_backward.default, (g, f, w, cls))
        lf, lw, lcls, lt, lb, la, lv = loss_args
        torch.library.opcheck(
            torch.ops.maskx._per_class_mask_loss_backward.default, (torch.tensor(0.7), lf, lw, lcls, lt, lb, la, lv)
        )


def test_compile():
    f, w, cls, b, a, t, v = make(5, 6, 4, 4, 3, seed=9)

    def fn(f, w, b, a):
        return mk.per_class_mask_logits(f, w, cls, b, a).square().mean() + mk.per_class_mask_loss(f, w, cls, t, b, a, v)

    inputs = [x.clone().requires_grad_() for x in (f, w, b, a)]
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    out = compiled(*inputs)
    out.backward()
    expected_inputs = [x.clone().requires_grad_() for x in (f, w, b, a)]
    expected = fn(*expected_inputs)
    expected.backward()
    torch.testing.assert_close(out, expected)
    for x, y in zip(inputs, expected_inputs):
        torch.testing.assert_close(x.grad, y.grad)


@pytest.mark.parametrize("shape", [(6, 5, 4, 3, 4), (12, 17, 9, 7, 5), (3, 32, 28, 28, 81)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_loss_matches_reference(shape, dtype):
    f, w, cls, b, a, t, v = make(*shape, dtype=dtype, seed=sum(shape))
    v[0] = True
    loss = mk.per_class_mask_loss(f, w, cls, t, b, a, v)
    expected = reference_in_float64(ref.per_class_mask_loss, f, w, cls, t, b, a, v)
    assert loss.dim() == 0 and loss.dtype == dtype
    torch.testing.assert_close(loss.double(), expected, **TOL[dtype])
    torch.testing.assert_close(
        mk.per_class_mask_loss(f, w, cls, t, b, a).double(), reference_in_float64(ref.per_class_mask_loss, f, w, cls, t, b, a), **TOL[dtype]
    )


def test_loss_is_stable_for_large_logits():
    f, w, cls, b, a, t, v = make(3, 4, 5, 5, 2, dtype=torch.float32)
    f = f * 1e4
    loss = mk.per_class_mask_loss(f, w, cls, t, b, a)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss.double(), reference_in_float64(ref.per_class_mask_loss, f, w, cls, t, b, a), rtol=1e-4, atol=1e-2)


def test_loss_ignores_invalid_rois_entirely():
    """Invalid RoIs' features are never read: NaNs there change nothing."""
    f, w, cls, b, a, t, v = make(6, 5, 4, 4, 3)
    v = torch.tensor([True, False, True, False, False, True])
    poisoned = f.clone()
    poisoned[~v] = float("nan")
    poisoned.requires_grad_()
    loss = mk.per_class_mask_loss(poisoned, w, cls, t, b, a, v)
    torch.testing.assert_close(loss, ref.per_class_mask_loss(f, w, cls, t, b, a, v))
    loss.backward()
    assert torch.isfinite(poisoned.grad).all() and torch.equal(poisoned.grad[~v], torch.zeros_like(poisoned.grad[~v]))


@pytest.mark.parametrize("rois", [0, 4])
def test_loss_without_valid_rois_is_a_differentiable_zero(rois):
    f, w, cls, b, a, t, _ = make(rois, 5, 4, 4, 3)
    inputs = [x.clone().requires_grad_() for x in (f, w, b, a)]
    loss = mk.per_class_mask_loss(inputs[0], inputs[1], cls, t, inputs[2], inputs[3], torch.zeros(rois, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    for x in inputs:
        assert torch.equal(x.grad, torch.zeros_like(x))


def test_loss_gradcheck():
    f, w, cls, b, a, t, _ = make(5, 3, 2, 3, 3, dtype=torch.float64, seed=4)
    cls = torch.tensor([1, 1, 0, 2, 1])
    v = torch.tensor([True, False, True, True, True])
    inputs = [x.requires_grad_() for x in (f, w, b, a)]
    assert torch.autograd.gradcheck(lambda f, w, b, a: mk.per_class_mask_loss(f, w, cls, t, b, a, v), inputs)


def test_loss_backward_matches_reference():
    f, w, cls, b, a, t, v = make(9, 16, 7, 6, 4, seed=8)
    v[1] = True
    grads = []
    for fn in (mk.per_class_mask_loss, ref.per_class_mask_loss):
        inputs = [x.clone().requires_grad_() for x in (f, w, b, a)]
        (3 * fn(inputs[0], inputs[1], cls, t, inputs[2], inputs[3], v)).backward()
        grads.append([x.grad for x in inputs])
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)


def test_logits_and_loss_agree_with_bce():
    f, w, cls, b, a, t, v = make(8, 10, 5, 5, 4, seed=11)
    v[2] = True
    logits = mk.per_class_mask_logits(f, w, cls, b, a)
    torch.testing.assert_close(mk.per_class_mask_loss(f, w, cls, t, b, a, v), F.binary_cross_entropy_with_logits(logits[v], t[v]))


BAD_LOGITS = [
    (dict(features=torch.randn(2, 3, 4)), ValueError, "features must be"),
    (dict(features=torch.randint(0, 3, (2, 3, 4, 4))), ValueError, "floating"),
    (dict(class_weights=torch.randn(5, 4)), ValueError, "class_weights must be"),
    (dict(class_weights=torch.randn(5, 3, dtype=torch.float64)), ValueError, "dtype"),
    (dict(classes=torch.tensor([0, 5])), IndexError, "class 5"),
    (dict(classes=torch.tensor([-1, 0])), IndexError, "class -1"),
    (dict(classes=torch.tensor([0, 1], dtype=torch.int32)), ValueError, "int64"),
    (dict(classes=torch.tensor([0, 1, 2])), ValueError, "classes must be"),
    (dict(class_bias=torch.randn(4)), ValueError, "class_bias must be"),
    (dict(agnostic_logits=torch.randn(2, 4, 5)), ValueError, "agnostic_logits must be"),
    (dict(agnostic_logits=torch.randn(2, 4, 4, dtype=torch.float64)), ValueError, "dtype"),
]


def _good_args():
    return dict(
        features=torch.randn(2, 3, 4, 4),
        class_weights=torch.randn(5, 3),
        classes=torch.tensor([0, 4]),
        class_bias=torch.randn(5),
        agnostic_logits=torch.randn(2, 4, 4),
    )


@pytest.mark.parametrize("bad,error,match", BAD_LOGITS)
def test_logits_bad_inputs(bad, error, match):
    args = {**_good_args(), **bad}
    with pytest.raises(error, match=match):
        mk.per_class_mask_logits(**args)
    with pytest.raises(error, match=match):
        mk.per_class_mask_loss(**args, targets=torch.rand(2, 4, 4))


def test_native_op_checks_class_values():
    args = _good_args()
    with pytest.raises(IndexError, match="class 7"):
        torch.ops.maskx.per_class_mask_logits(args["features"], args["class_weights"], torch.tensor([7, 0]), None, None, False)


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(targets=torch.rand(2, 4, 3)), "targets must be"),
        (dict(targets=torch.rand(2, 4, 4, dtype=torch.float64)), "dtype"),
        (dict(targets=torch.full((2, 4, 4), 1.5)), r"\[0, 1\]"),
        (dict(targets=torch.full((2, 4, 4), -0.5)), r"\[0, 1\]"),
        (dict(valid=torch.tensor([1, 0])), "bool"),
        (dict(valid=torch.tensor([True])), "valid must be"),
    ],
)
def test_loss_bad_inputs(bad, match):
    args = {**_good_args(), "targets": torch.rand(2, 4, 4), **bad}
    with pytest.raises(ValueError, match=match):
        mk.per_class_mask_loss(**args)
