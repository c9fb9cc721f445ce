"""maskx_kernels.transfer_mlp and detection_embedding against an explicit F.linear /
F.leaky_relu chain (maskx_kernels.reference.transfer_mlp), on the CPU and the CUDA device."""
import pytest
import torch

import maskx_kernels as mk
from conftest import assert_same_gradients, cpu_and_cuda
from maskx_kernels.reference import transfer_mlp as ref

TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-10),
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.bfloat16: dict(atol=1e-1, rtol=5e-2),
}


def make_mlp(widths, dtype=torch.float32, seed=0, classes=13):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(classes, widths[0], generator=g, dtype=torch.float64).to(dtype)
    weights = [
        (torch.randn(d_out, d_in, generator=g, dtype=torch.float64) / d_in**0.5).to(dtype)
        for d_in, d_out in zip(widths[:-1], widths[1:])
    ]
    biases = [torch.randn(w.shape[0], generator=g, dtype=torch.float64).to(dtype) for w in weights]
    return x, weights, biases


WIDTHS = [(7, 5), (40, 24, 19), (33, 16, 17, 9), (5120, 256, 256), (3, 1, 2)]


@pytest.mark.parametrize("widths", WIDTHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("slope", [0.1, 0.0])
def test_matches_reference(widths, dtype, slope):
    x, weights, biases = make_mlp(widths, dtype=dtype, seed=len(widths), classes=81 if widths[0] == 5120 else 13)
    out = mk.transfer_mlp(x, weights, biases, negative_slope=slope)
    expected = ref.transfer_mlp(x.double(), [w.double() for w in weights], [b.double() for b in biases], slope)
    assert out.shape == (x.shape[0], widths[-1]) and out.dtype == dtype
    torch.testing.assert_close(out.double(), expected, **TOL[dtype])


def test_empty_and_single_class():
    x, weights, biases = make_mlp((6, 4, 3), classes=0)
    assert mk.transfer_mlp(x, weights, biases).shape == (0, 3)
    x, weights, biases = make_mlp((6, 4, 3), classes=1)
    torch.testing.assert_close(mk.transfer_mlp(x, weights, biases), ref.transfer_mlp(x, weights, biases))


@pytest.mark.parametrize("widths", [(6, 4), (6, 5, 3), (5, 4, 3, 2)])
@pytest.mark.parametrize("x_requires_grad", [True, False])
def test_gradcheck(widths, x_requires_grad):
    x, weights, biases = make_mlp(widths, dtype=torch.float64, seed=1, classes=5)
    x.requires_grad_(x_requires_grad)
    params = [t.requires_grad_() for t in weights + biases]
    n = len(weights)

    def fn(x, *params):
        return mk.transfer_mlp(x, list(params[:n]), list(params[n:]), negative_slope=0.2)

    assert torch.autograd.gradcheck(fn, (x, *params))


def test_backward_matches_reference_and_skips_x():
    x, weights, biases = make_mlp((30, 20, 10, 8), seed=2)
    grads = []
    for fn in (mk.transfer_mlp, ref.transfer_mlp):
        ws = [w.clone().requires_grad_() for w in weights]
        bs = [b.clone().requires_grad_() for b in biases]
        fn(x, ws, bs, 0.1).pow(2).sum().backward()
        grads.append([t.grad for t in ws + bs])
    assert x.grad is None
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_opcheck(device):
    for widths in [(6, 4), (9, 5, 3), (5, 4, 3, 2)]:
        x, weights, biases = make_mlp(widths, seed=3)
        x, weights, biases = x.to(device), [w.to(device) for w in weights], [b.to(device) for b in biases]
        for requires_grad in (False, True):
            args = (x.clone().requires_grad_(requires_grad), [w.clone().requires_grad_() for w in weights], [b.clone() for b in biases], 0.1)
            torch.library.opcheck(torch.ops.maskx.transfer_mlp.default, args)
        grad = torch.randn(x.shape[0], widths[-1], device=device)
        _, hidden = torch.ops.maskx.transfer_mlp(x, weights, biases, 0.1)
        torch.library.opcheck(torch.ops.maskx._transfer_mlp_backward.default, (grad, x, hidden, weights, 0.1))


def test_compile():
    x, weights, biases = make_mlp((12, 8, 6), seed=4)

    def fn(x, w0, w1, b0, b1):
        return mk.transfer_mlp(x, [w0, w1], [b0, b1]).sum()

    assert_same_gradients(torch.compile(fn, fullgraph=True, backend="aot_eager"), fn, (x, *weights, *biases))


def test_backward_is_deterministic():
    x, weights, biases = make_mlp((64, 32, 16), seed=5, classes=300)
    grad = torch.randn(300, 16)
    _, hidden = torch.ops.maskx.transfer_mlp(x, weights, biases, 0.1)
    first = torch.ops.maskx._transfer_mlp_backward(grad, x, hidden, weights, 0.1)
    second = torch.ops.maskx._transfer_mlp_backward(grad, x, hidden, weights, 0.1)
    for a, b in zip(first[0] + first[1] + [first[2]], second[0] + second[1] + [second[2]]):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda x, w, b: (x[0], w, b), "x must be"),
        (lambda x, w, b: (x.long(), w, b), "floating"),
        (lambda x, w, b: (x, [], []), "1 to 3 layers"),
        (lambda x, w, b: (x, w * 2, b * 2), "1 to 3 layers"),
        (lambda x, w, b: (x, w, b[:1]), "biases"),
        (lambda x, w, b: (x, [w[0], w[0]], b), "chain"),
        (lambda x, w, b: (x, w, [b[0], b[0]]), r"biases\[1\]"),
        (lambda x, w, b: (x, [w[0].double(), w[1]], b), "dtype"),
        (lambda x, w, b: (x, w, b, -0.1), "non-negative"),
        (lambda x, w, b: (x, [w[0].to("meta"), w[1]], b), "device"),
    ],
)
def test_bad_inputs(mutate, match):
    x, weights, biases = make_mlp((6, 4, 3))
    with pytest.raises(ValueError, match=match):
        mk.transfer_mlp(*mutate(x, weights, biases))


def test_native_op_checks_chain():
    x, weights, biases = make_mlp((6, 4, 3))
    with pytest.raises(ValueError, match="chain"):
        torch.ops.maskx.transfer_mlp(x, [weights[1], weights[0]], biases, 0.1)
    with pytest.raises(ValueError, match="non-negative"):
        torch.ops.maskx.transfer_mlp(x, weights, biases, -0.5)


def test_detection_embedding_layout():
    c, d = 5, 7
    cls_weight = torch.randn(c, d)
    bbox_weight = torch.randn(4 * c, d)
    assert torch.equal(mk.detection_embedding(cls_weight, bbox_weight, "cls"), cls_weight)
    box = mk.detection_embedding(cls_weight, bbox_weight, "box")
    both = mk.detection_embedding(cls_weight, bbox_weight, "cls+box")
    assert box.shape == (c, 4 * d) and both.shape == (c, 5 * d)
    for k in range(c):
        # torchvision's FastRCNNPredictor: bbox_pred rows 4k..4k+3 are class k's (dx, dy, dw, dh).
        assert torch.equal(box[k], torch.cat([bbox_weight[4 * k + j] for j in range(4)]))
        assert torch.equal(both[k], torch.cat([cls_weight[k], box[k]]))


def test_detection_embedding_of_a_torchvision_predictor():
    torchvision = pytest.importorskip("torchvision")
    predictor = torchvision.models.detection.faster_rcnn.FastRCNNPredictor(1024, 81)
    x = mk.detection_embedding(predictor.cls_score.weight, predictor.bbox_pred.weight, "cls+box")
    assert x.shape == (81, 5120)


@pytest.mark.parametrize("kind", ["cls", "box", "cls+box"])
def test_stop_gradient(kind):
    """T's loss leaves the detector alone by default and reaches it with detach=False."""
    c, d = 6, 8
    cls_weight = torch.randn(c, d, requires_grad=True)
    bbox_weight = torch.randn(4 * c, d, requires_grad=True)
    width = {"cls": d, "box": 4 * d, "cls+box": 5 * d}[kind]
    _, weights, biases = make_mlp((width, 10, 4), seed=6)
    weights = [w.requires_grad_() for w in weights]

    mk.transfer_mlp(mk.detection_embedding(cls_weight, bbox_weight, kind), weights, biases).square().sum().backward()
    assert cls_weight.grad is None and bbox_weight.grad is None
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in weights)

    mk.transfer_mlp(mk.detection_embedding(cls_weight, bbox_weight, kind, detach=False), weights, biases).square().sum().backward()
    if kind in ("cls", "cls+box"):
        assert cls_weight.grad is not None and cls_weight.grad.abs().sum() > 0
    if kind in ("box", "cls+box"):
        assert bbox_weight.grad is not None and bbox_weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.randn(5, 7), torch.randn(20, 7), "mask"), "kind"),
        ((torch.randn(5, 7), torch.randn(5, 7), "box"), "4C"),
        ((torch.randn(5), torch.randn(20, 7), "cls"), "cls_weight"),
        ((torch.randn(5, 7), torch.randn(20, 7, dtype=torch.float64), "cls"), "dtype"),
    ],
)
def test_detection_embedding_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        mk.detection_embedding(*args)


# CUDA: forward and backward against the float64 reference up to a real head's size.
def make_kink_free_mlp(widths, dtype=torch.float32, classes=13, seed=0):
    """Inputs and parameters on the CUDA device. Biases of magnitude 1 to 2 and either sign
    dominate the weighted sums (about 0.1), so that no pre-activation lies within rounding
    of LeakyReLU's kink, where the float32 result and the float64 reference may take
    different slopes."""
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
    return x.cuda(), [w.cuda() for w in weights], [b.cuda() for b in biases]


@pytest.mark.needs_cuda
@pytest.mark.parametrize("widths", [(7, 5), (40, 24, 19), (33, 16, 17, 9), (5120, 256, 256), (5120, 1024, 256)])
@pytest.mark.parametrize("classes", [1, 81, 3002])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_reference(widths, classes, dtype):
    x, weights, biases = make_kink_free_mlp(widths, dtype, classes, seed=classes)
    params = [p.requires_grad_() for p in weights + biases]
    out = mk.transfer_mlp(x, weights, biases, 0.1)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected_params = [p.detach().cpu().double().requires_grad_() for p in params]
    n = len(weights)
    expected = ref.transfer_mlp(x.cpu().double(), expected_params[:n], expected_params[n:], 0.1)
    expected.backward(grad.cpu().double())
    # float32 matrix products follow torch.backends.cuda.matmul.allow_tf32 (off by default).
    tol = dict(atol=2e-3, rtol=2e-3) if dtype == torch.float32 else TOL[dtype]
    torch.testing.assert_close(out.detach().cpu().double(), expected.detach(), **tol)
    for p, e in zip(params, expected_params):
        torch.testing.assert_close(p.grad.cpu().double(), e.grad, **tol)
