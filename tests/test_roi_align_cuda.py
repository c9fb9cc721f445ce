"""CUDA kernels of maskx::roi_align and maskx::multi_scale_roi_align against the CPU
kernels (float64) and torchvision. Skipped without a CUDA device."""
import pytest
import torch
import torchvision

import maskx_kernels
from conftest import deterministic_algorithms

pytestmark = pytest.mark.needs_cuda
DEVICE = "cuda"
TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 4e-2}
LAYOUTS = ["contiguous", "channels_last", "strided"]


def in_layout(x, layout):
    """x on the device, stored contiguously, channels-last or as a strided view."""
    if layout == "channels_last":
        return x.to(DEVICE).contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        n, c, h, w = x.shape
        view = torch.empty(n, 2 * c, h, 3 * w, dtype=x.dtype, device=DEVICE)[:, ::2, :, ::3]
        view.copy_(x)
        return view
    return x.to(DEVICE)


def random_rois(g, num_rois, batch, height, width, spatial_scale):
    """float64 boxes in image coordinates, some reaching past the map on any side."""
    h, w = height / spatial_scale, width / spatial_scale
    x = (torch.rand(num_rois, 2, generator=g, dtype=torch.float64) * 1.5 - 0.25) * w
    y = (torch.rand(num_rois, 2, generator=g, dtype=torch.float64) * 1.5 - 0.25) * h
    index = torch.randint(0, batch, (num_rois, 1), generator=g).to(torch.float64)
    return torch.cat([index, x.min(1, keepdim=True)[0], y.min(1, keepdim=True)[0], x.max(1, keepdim=True)[0],
                      y.max(1, keepdim=True)[0]], dim=1)


def cpu_roi_align(x, rois, *args):
    """The CPU kernel in float64 on the (rounded) values of x and rois."""
    return torch.ops.maskx.roi_align(x.detach().cpu().double(), rois.cpu().double(), *args)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_forward_matches_cpu(dtype, layout):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 13, 11, generator=g, dtype=torch.float64).to(dtype)
    rois = random_rois(g, 17, 2, 13, 11, 0.5).to(dtype)
    for ratio, aligned in [(0, False), (2, True), (1, False), (3, True)]:
        args = (0.5, 3, 4, ratio, aligned)
        out = torch.ops.maskx.roi_align(in_layout(x, layout), rois.to(DEVICE), *args)
        assert out.dtype == dtype and out.is_contiguous()
        tol = TOLERANCE[dtype]
        torch.testing.assert_close(out.cpu().double(), cpu_roi_align(x, rois, *args), rtol=tol, atol=tol)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("ratio", [0, 2])
def test_forward_matches_torchvision(aligned, ratio):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 25, 31, generator=g).to(DEVICE)
    rois = random_rois(g, 40, 2, 25, 31, 0.25).float().to(DEVICE)
    ours = maskx_kernels.roi_align(x, rois, (7, 7), 0.25, ratio, aligned)
    theirs = torchvision.ops.roi_align(x, rois, (7, 7), 0.25, ratio, aligned)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_backward_matches_cpu(deterministic, dtype):
    g = torch.Generator().manual_seed(2)
    rois = random_rois(g, 23, 2, 9, 12, 0.5).to(dtype)
    grad = torch.randn(23, 4, 3, 2, generator=g, dtype=torch.float64).to(dtype)
    for ratio, aligned in [(0, False), (2, True)]:
        args = (0.5, 3, 2, 2, 4, 9, 12, ratio, aligned)
        out = torch.ops.maskx._roi_align_backward(grad.to(DEVICE), rois.to(DEVICE), *args)
        expected = torch.ops.maskx._roi_align_backward(grad.double(), rois.double(), *args)
        assert out.dtype == dtype and out.shape == (2, 4, 9, 12)
        tol = TOLERANCE[dtype]
        torch.testing.assert_close(out.cpu().double(), expected, rtol=tol, atol=tol)


def test_deterministic_backward_is_reproducible_and_matches_atomic():
    g = torch.Generator().manual_seed(3)
    # Many overlapping RoIs on a small map: atomics collide on every pixel.
    rois = random_rois(g, 300, 2, 20, 24, 1.0).float().to(DEVICE)
    grad = torch.randn(300, 16, 7, 7, generator=g).to(DEVICE)
    args = (1.0, 7, 7, 2, 16, 20, 24, 0, True)
    with deterministic_algorithms(True):
        first = torch.ops.maskx._roi_align_backward(grad, rois, *args)
        second = torch.ops.maskx._roi_align_backward(grad, rois, *args)
    with deterministic_algorithms(False):
        atomic = torch.ops.maskx._roi_align_backward(grad, rois, *args)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, atomic, rtol=1e-5, atol=1e-4)


def pyramid(g, layouts, dtype=torch.float64):
    shapes = [(16, 20), (8, 10), (4, 5), (2, 3)]
    cpu = [torch.randn(2, 3, h, w, generator=g, dtype=torch.float64).to(dtype) for h, w in shapes[: len(layouts)]]
    return cpu, [in_layout(f, layout) for f, layout in zip(cpu, layouts)]


def test_multi_scale_forward_and_backward_match_cpu(deterministic):
    g = torch.Generator().manual_seed(4)
    features, on_device = pyramid(g, LAYOUTS + ["contiguous"])
    scales = [0.25, 0.125, 0.0625, 0.03125]
    rois = random_rois(g, 30, 2, 16, 20, 0.25)
    levels = torch.randint(0, 4, (30,), generator=g)
    args = (scales, 2, 3, 2, True)
    out = torch.ops.maskx.multi_scale_roi_align(on_device, rois.to(DEVICE), levels.to(DEVICE), *args)
    expected = torch.ops.maskx.multi_scale_roi_align(features, rois, levels, *args)
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-10, atol=1e-10)
    grad = torch.randn(30, 3, 2, 3, generator=g, dtype=torch.float64)
    sizes = ([f.shape[2] for f in features], [f.shape[3] for f in features])
    back_args = (scales, 2, 3, 2, 3, *sizes, 2, True)
    grads = torch.ops.maskx._multi_scale_roi_align_backward(
        grad.to(DEVICE), rois.to(DEVICE), levels.to(DEVICE), *back_args
    )
    expected_grads = torch.ops.maskx._multi_scale_roi_align_backward(grad, rois, levels, *back_args)
    assert len(grads) == 4
    for ours, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-10, atol=1e-10)


def test_more_levels_than_one_launch_holds(deterministic):
    # Pyramids deeper than a launch's level table take several launches.
    g = torch.Generator().manual_seed(5)
    features = [torch.randn(1, 2, 3 + l, 4 + l, generator=g, dtype=torch.float64) for l in range(11)]
    scales = [1.0 / (1 + l) for l in range(11)]
    rois = random_rois(g, 40, 1, 3, 4, 1.0)
    levels = torch.randint(0, 11, (40,), generator=g)
    out = torch.ops.maskx.multi_scale_roi_align(
        [f.to(DEVICE) for f in features], rois.to(DEVICE), levels.to(DEVICE), scales, 2, 2, 0, False
    )
    expected = torch.ops.maskx.multi_scale_roi_align(features, rois, levels, scales, 2, 2, 0, False)
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-10, atol=1e-10)
    grad = torch.randn(40, 2, 2, 2, generator=g, dtype=torch.float64)
    sizes = ([f.shape[2] for f in features], [f.shape[3] for f in features])
    grads = torch.ops.maskx._multi_scale_roi_align_backward(
        grad.to(DEVICE), rois.to(DEVICE), levels.to(DEVICE), scales, 2, 2, 1, 2, *sizes, 0, False
    )
    expected_grads = torch.ops.maskx._multi_scale_roi_align_backward(
        grad, rois, levels, scales, 2, 2, 1, 2, *sizes, 0, False
    )
    for ours, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-10, atol=1e-10)


def test_invalid_rois_pool_to_zero_and_get_no_gradient(deterministic):
    # The raw ops do not check RoI values on the GPU; bad RoIs must not read out of bounds.
    g = torch.Generator().manual_seed(6)
    features, on_device = pyramid(g, ["contiguous", "contiguous"])
    rois = random_rois(g, 8, 2, 16, 20, 0.25)
    levels = torch.randint(0, 2, (8,), generator=g)
    rois[1, 0] = 2.0  # batch index past the batch
    rois[2, 0] = -1.0
    rois[3, 0] = 0.5  # not an integer
    rois[4, 2] = float("nan")
    rois[5, 3] = float("inf")
    levels[6] = 2  # level past the pyramid
    levels[7] = -1
    valid = torch.tensor([True] + [False] * 7)
    args = ([0.25, 0.125], 2, 2, 0, True)
    out = torch.ops.maskx.multi_scale_roi_align(on_device, rois.to(DEVICE), levels.to(DEVICE), *args).cpu()
    assert bool((out[~valid] == 0).all())
    expected = torch.ops.maskx.multi_scale_roi_align(features, rois[valid], levels[valid], *args)
    torch.testing.assert_close(out[valid], expected, rtol=1e-10, atol=1e-10)
    single = torch.ops.maskx.roi_align(on_device[0], rois[:6].to(DEVICE), 0.25, 2, 2, 0, True).cpu()
    assert bool((single[1:] == 0).all())
    grad = torch.randn(8, 3, 2, 2, generator=g, dtype=torch.float64)
    sizes = ([16, 8], [20, 10])
    grads = torch.ops.maskx._multi_scale_roi_align_backward(
        grad.to(DEVICE), rois.to(DEVICE), levels.to(DEVICE), [0.25, 0.125], 2, 2, 2, 3, *sizes, 0, True
    )
    expected_grads = torch.ops.maskx._multi_scale_roi_align_backward(
        grad[valid], rois[valid], levels[valid], [0.25, 0.125], 2, 2, 2, 3, *sizes, 0, True
    )
    for ours, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-10, atol=1e-10)


def test_empty(deterministic):
    x = torch.randn(2, 3, 5, 6, device=DEVICE)
    out = torch.ops.maskx.roi_align(x, torch.empty(0, 5, device=DEVICE), 1.0, 2, 2, 2, False)
    assert out.shape == (0, 3, 2, 2)
    grad = torch.ops.maskx._roi_align_backward(
        torch.empty(0, 3, 2, 2, device=DEVICE), torch.empty(0, 5, device=DEVICE), 1.0, 2, 2, 2, 3, 5, 6, 2, False
    )
    assert grad.shape == (2, 3, 5, 6) and bool((grad == 0).all())


def test_gradcheck(deterministic):
    # Atomic float64 sums may differ in the last bits between two backward passes.
    tol = 0.0 if deterministic else 1e-12
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 2, 6, 7, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    rois = random_rois(g, 5, 2, 6, 7, 1.0).to(DEVICE)
    for output_size, ratio, aligned in [((2, 3), 2, True), ((3, 2), 0, False)]:
        assert torch.autograd.gradcheck(
            lambda t: maskx_kernels.roi_align(t, rois, output_size, 1.0, ratio, aligned), (x,), nondet_tol=tol
        )
    p0 = torch.randn(2, 2, 8, 8, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    p1 = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    boxes = random_rois(g, 6, 2, 8, 8, 0.5).to(DEVICE)
    levels = torch.tensor([0, 1, 0, 1, 1, 0], device=DEVICE)
    assert torch.autograd.gradcheck(
        lambda a, b: maskx_kernels.multi_scale_roi_align([a, b], boxes, levels, [0.5, 0.25], 2, 2, False),
        (p0, p1),
        nondet_tol=tol,
    )


def test_opcheck():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 3, 7, 6, generator=g).to(DEVICE).requires_grad_()
    rois = random_rois(g, 4, 2, 7, 6, 1.0).float().to(DEVICE)
    torch.library.opcheck(torch.ops.maskx.roi_align.default, (x, rois, 1.0, 2, 2, 2, True))
    grad = torch.randn(4, 3, 2, 2, generator=g).to(DEVICE)
    torch.library.opcheck(torch.ops.maskx._roi_align_backward.default, (grad, rois, 1.0, 2, 2, 2, 3, 7, 6, 0, False))
    features = [x, torch.randn(2, 3, 4, 3, generator=g).to(DEVICE).requires_grad_()]
    levels = torch.tensor([0, 1, 1, 0], device=DEVICE)
    torch.library.opcheck(
        torch.ops.maskx.multi_scale_roi_align.default, (features, rois, levels, [1.0, 0.5], 2, 2, 2, False)
    )
    torch.library.opcheck(
        torch.ops.maskx._multi_scale_roi_align_backward.default,
        (grad, rois, levels, [1.0, 0.5], 2, 2, 2, 3, [7, 4], [6, 3], 2, False),
    )


def test_compile():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(1, 4, 9, 9, generator=g).to(DEVICE)
    rois = random_rois(g, 5, 1, 9, 9, 1.0).float().to(DEVICE)

    def pool(t):
        return maskx_kernels.roi_align(t, rois, 3, 1.0, 2, True)

    compiled = torch.compile(pool, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), pool(x))


# One case per check, so that a failure (or a crash) names the check it came from.
BAD_CALLS = {
    "devices differ": (lambda x, rois: maskx_kernels.roi_align(x, rois.cpu(), 2), "one device"),
    "batch index": (
        lambda x, rois: maskx_kernels.roi_align(x, torch.tensor([[2.0, 0.5, 0.5, 3.0, 3.5]], device=DEVICE), 2),
        "batch index",
    ),
    "native: rois device": (lambda x, rois: torch.ops.maskx.roi_align(x, rois.cpu(), 1.0, 2, 2, 2, False), "rois are on"),
    "native: levels device": (
        lambda x, rois: torch.ops.maskx.multi_scale_roi_align(
            [x], rois, torch.zeros(1, dtype=torch.long), [1.0], 2, 2, 2, False
        ),
        "levels are on",
    ),
    "native: grad shape": (
        lambda x, rois: torch.ops.maskx._roi_align_backward(
            torch.randn(1, 3, 2, 3, device=DEVICE), rois, 1.0, 2, 2, 2, 3, 5, 5, 2, False
        ),
        "grad has shape",
    ),
    "native: output size": (lambda x, rois: torch.ops.maskx.roi_align(x, rois, 1.0, 0, 2, 2, False), "output size"),
    "native: scale": (lambda x, rois: torch.ops.maskx.roi_align(x, rois, -1.0, 2, 2, 2, False), "spatial_scale"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_inputs(case):
    call, match = BAD_CALLS[case]
    x = torch.randn(2, 3, 5, 5, device=DEVICE)
    rois = torch.tensor([[0.0, 0.5, 0.5, 3.0, 3.5]], device=DEVICE)
    with pytest.raises(ValueError, match=match):
        call(x, rois)
