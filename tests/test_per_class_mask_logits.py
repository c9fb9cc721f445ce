"""maskx_kernels.per_class_mask_logits against the explicit all-class conv then select
(maskx_kernels.reference.mask_logits), on the CPU and the CUDA device."""
import pytest
import torch

import maskx_kernels as mk
from conftest import assert_same_gradients, cpu_and_cuda
from mask_logits_cases import BAD_SHARED_ARGS, TOL, good_args, make, reference_in_float64, to_device
from maskx_kernels.reference import mask_logits as ref

# Channel counts below, at and above the kernels' 8-channel steps (the CPU kernel's row
# sweep, the CUDA backward's channel blocks), with and without a tail; the last: 256
# channels and 3002 classes (LVIS), a real head's size.
SHAPES = [
    (1, 1, 1, 1, 1),
    (3, 5, 7, 9, 4),
    (2, 8, 5, 3, 6),
    (6, 17, 13, 11, 81),
    (5, 23, 6, 7, 4),
    (4, 32, 28, 28, 3),
    (9, 3, 2, 5, 2),
    (5, 33, 2, 5, 2),
    (9, 256, 28, 28, 3002),
]


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("sigmoid", [False, True])
def test_logits_match_reference(shape, dtype, sigmoid, device):
    f, w, cls, b, a, _, _ = make(*shape, dtype=dtype, seed=sum(shape))
    out = mk.per_class_mask_logits(*to_device((f, w, cls, b, a), device), sigmoid=sigmoid)
    expected = reference_in_float64(ref.per_class_mask_logits, f, w, cls, b, a, sigmoid=sigmoid)
    assert out.device.type == device and out.dtype == dtype and out.shape == (shape[0], shape[2], shape[3])
    torch.testing.assert_close(out.cpu().double(), expected, **TOL[dtype])


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


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_logits_empty(device):
    f, w, cls, b, a, _, _ = to_device(make(0, 8, 6, 5, 7), device)
    assert mk.per_class_mask_logits(f, w, cls, b, a).shape == (0, 6, 5)
    f.requires_grad_()
    w.requires_grad_()
    mk.per_class_mask_logits(f, w, cls, b).sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("sigmoid", [False, True])
def test_logits_gradcheck(sigmoid, device):
    f, w, cls, b, a, _, _ = make(4, 3, 3, 2, 3, dtype=torch.float64, seed=3)
    cls = torch.tensor([2, 0, 2, 1], device=device)  # a repeated class, so weight gradients are summed
    inputs = [t.to(device).requires_grad_() for t in (f, w, b, a)]

    def fn(f, w, b, a):
        return mk.per_class_mask_logits(f, w, cls, b, a, sigmoid=sigmoid)

    assert torch.autograd.gradcheck(fn, inputs)


ONE_INPUT_CASES = [
    (bias, agnostic, wanted)
    for bias, agnostic in [(True, True), (False, True), (True, False)]
    for wanted in ["features", "class_weights", "class_bias", "agnostic_logits"]
    if (wanted != "class_bias" or bias) and (wanted != "agnostic_logits" or agnostic)
]


@pytest.mark.parametrize("bias,agnostic,wanted", ONE_INPUT_CASES)
def test_logits_gradient_of_one_input(bias, agnostic, wanted):
    """Only one input requires grad (autograd asks the backward for that one alone)."""
    f, w, cls, b, a, _, _ = make(5, 6, 4, 3, 4, dtype=torch.float64, seed=11, bias=bias, agnostic=agnostic)
    args = dict(features=f, class_weights=w, class_bias=b, agnostic_logits=a)
    grad = torch.randn(5, 4, 3, dtype=torch.float64)
    results = []
    for fn in (mk.per_class_mask_logits, ref.per_class_mask_logits):
        x = args[wanted].detach().requires_grad_()
        call = dict(args, **{wanted: x})
        fn(call["features"], call["class_weights"], cls, call["class_bias"], call["agnostic_logits"]).backward(grad)
        results.append(x.grad)
    torch.testing.assert_close(results[0], results[1])


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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        second = torch.ops.maskx._per_class_mask_logits_backward(g, f, w, cls)
    finally:
        torch.set_num_threads(threads)
    for x, y in zip(first, second):
        assert torch.equal(x, y)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_opcheck(device):
    for seed, shape in enumerate([(5, 4, 3, 3, 3), (7, 9, 5, 6, 4), (0, 3, 2, 2, 2)]):
        f, w, cls, b, a, _, _ = to_device(make(*shape, seed=seed), device)
        for requires_grad in (False, True):
            inputs = [t.clone().requires_grad_(requires_grad) for t in (f, w, b, a)]
            for sigmoid in (False, True):
                torch.library.opcheck(
                    torch.ops.maskx.per_class_mask_logits.default, (inputs[0], inputs[1], cls, inputs[2], inputs[3], sigmoid)
                )
        g = torch.randn(f.shape[0], f.shape[2], f.shape[3], device=device)
        torch.library.opcheck(torch.ops.maskx._per_class_mask_logits_backward.default, (g, f, w, cls))


def test_compile():
    f, w, cls, b, a, _, _ = make(5, 6, 4, 4, 3, seed=9)

    def fn(f, w, b, a):
        return mk.per_class_mask_logits(f, w, cls, b, a).square().mean()

    assert_same_gradients(torch.compile(fn, fullgraph=True, backend="aot_eager"), fn, (f, w, b, a))


@pytest.mark.parametrize("bad,error,match", BAD_SHARED_ARGS)
def test_bad_inputs(bad, error, match):
    with pytest.raises(error, match=match):
        mk.per_class_mask_logits(**{**good_args(), **bad})


def test_native_op_checks_class_values():
    args = good_args()
    with pytest.raises(IndexError, match="class 7"):
        torch.ops.maskx.per_class_mask_logits(args["features"], args["class_weights"], torch.tensor([7, 0]), None, None, False)


# CUDA: gradients against the float64 reference up to a real head's size, determinism
# (no atomics) and the checks of CUDA inputs.
CUDA_BACKWARD_SHAPES = [(1, 1, 1, 1, 1), (3, 5, 7, 9, 4), (6, 17, 13, 11, 81), (9, 256, 28, 28, 3002), (5, 33, 2, 5, 2)]


@pytest.mark.needs_cuda
@pytest.mark.parametrize("shape", CUDA_BACKWARD_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_cuda_logits_backward_matches_reference(shape, dtype):
    f, w, cls, b, a, _, _ = make(*shape, dtype=dtype, seed=sum(shape) + 1)
    grad = torch.randn(shape[0], shape[2], shape[3], dtype=torch.float64).to(dtype)
    inputs = [t.cuda().requires_grad_() for t in (f, w, b, a)]
    mk.per_class_mask_logits(inputs[0], inputs[1], cls.cuda(), inputs[2], inputs[3]).backward(grad.cuda())
    expected_inputs = [t.double().requires_grad_() for t in (f, w, b, a)]
    ref.per_class_mask_logits(expected_inputs[0], expected_inputs[1], cls, expected_inputs[2], expected_inputs[3]).backward(
        grad.double()
    )
    # Gradients of class weights sum over RoIs and pixels: looser in reduced precision.
    tol = TOL[dtype] if dtype != torch.bfloat16 else dict(atol=0.5, rtol=5e-2)
    for x, y in zip(inputs, expected_inputs):
        torch.testing.assert_close(x.grad.cpu().double(), y.grad, **tol)


@pytest.mark.needs_cuda
def test_cuda_logits_backward_is_deterministic():
    f, w, cls = to_device(make(64, 32, 14, 14, 5, seed=3)[:3], "cuda")
    grad = torch.randn(64, 14, 14, device="cuda")
    results = []
    for _ in range(2):
        results.append(torch.ops.maskx._per_class_mask_logits_backward(grad, f, w, cls))
    for first, second in zip(*results):
        assert torch.equal(first, second)


@pytest.mark.needs_cuda
def test_cuda_bad_class_and_device():
    f, w, cls, b, a, _, _ = to_device(make(3, 4, 5, 5, 3, seed=8), "cuda")
    with pytest.raises(IndexError, match="class 3"):
        mk.per_class_mask_logits(f, w, torch.tensor([0, 3, 1], device="cuda"), b, a)
    with pytest.raises(ValueError, match="on cpu"):
        mk.per_class_mask_logits(f, w.cpu(), cls, b, a)


@pytest.mark.needs_cuda
def test_cuda_native_checks_raise():
    f, w, cls = to_device(make(2, 3, 4, 4, 5)[:3], "cuda")
    with pytest.raises(ValueError, match="grad must be a"):
        torch.ops.maskx._per_class_mask_logits_backward(torch.randn(2, 4, 5, device="cuda"), f, w, cls)
    with pytest.raises(ValueError, match="classes are on"):
        torch.ops.maskx.per_class_mask_logits(f, w, cls.cpu(), None, None, False)
