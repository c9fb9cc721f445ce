"""maskx_kernels.triton.roi_align against the plain-PyTorch reference.

Runs on the CPU through the Triton interpreter (TRITON_INTERPRET=1) or on a GPU.
"""
import pytest
import torch

import maskx_kernels
from conftest import TRITON_DEVICE as DEVICE
from conftest import deterministic_algorithms
from maskx_kernels.reference import roi_align as reference

pytestmark = pytest.mark.triton
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3}


@pytest.fixture(scope="module")
def triton_roi_align():
    from maskx_kernels.triton import roi_align as module

    return module


def random_rois(generator, num_rois, batch, height, width, spatial_scale, dtype):
    """Boxes in image coordinates, some reaching past the feature map on any side."""
    h, w = height / spatial_scale, width / spatial_scale
    x = (torch.rand(num_rois, 2, generator=generator, dtype=torch.float64) * 1.5 - 0.25) * w
    y = (torch.rand(num_rois, 2, generator=generator, dtype=torch.float64) * 1.5 - 0.25) * h
    index = torch.randint(0, batch, (num_rois, 1), generator=generator).to(torch.float64)
    boxes = torch.cat([index, x.min(1, keepdim=True)[0], y.min(1, keepdim=True)[0], x.max(1, keepdim=True)[0],
                       y.max(1, keepdim=True)[0]], dim=1)
    return boxes.to(dtype)


# (batch, channels, height, width, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned, dtype)
CASES = [
    (2, 3, 7, 9, 4, 3, 2, 0.5, 0, False, torch.float64),
    (1, 5, 11, 6, 3, 2, 3, 1.0, 1, True, torch.float64),
    (2, 4, 5, 13, 4, 3, 3, 0.25, 2, False, torch.float32),
    (3, 2, 9, 9, 5, 2, 2, 0.6, 3, True, torch.float32),
    (1, 6, 8, 10, 3, 1, 4, 1.0, 0, True, torch.float32),
    (2, 3, 6, 7, 3, 2, 2, 0.8, 2, True, torch.float16),
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_forward_matches_reference(triton_roi_align, case):
    batch, channels, height, width, num_rois, ph, pw, scale, ratio, aligned, dtype = case
    g = torch.Generator().manual_seed(sum(case[:5]))
    x = torch.randn(batch, channels, height, width, generator=g, dtype=torch.float64)
    rois = random_rois(g, num_rois, batch, height, width, scale, torch.float64)
    expected = reference.roi_align(x.to(dtype).double(), rois.to(dtype).double(), scale, ph, pw, ratio, aligned)
    out = triton_roi_align.roi_align(x.to(dtype).to(DEVICE), rois.to(dtype).to(DEVICE), scale, ph, pw, ratio, aligned)
    assert out.dtype == dtype and out.shape == (num_rois, channels, ph, pw)
    torch.testing.assert_close(out.cpu().double(), expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def test_strided_inputs(triton_roi_align):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 9, 11, generator=g)
    rois = random_rois(g, 4, 2, 9, 11, 0.5, torch.float32)
    expected = reference.roi_align(x.double(), rois.double(), 0.5, 3, 3, 2, True)
    channels_last = x.to(DEVICE).contiguous(memory_format=torch.channels_last)
    sliced = torch.randn(2, 12, 9, 22, generator=g).to(DEVICE)[:, ::2, :, ::2]
    sliced.copy_(x)
    for view in (channels_last, sliced):
        out = triton_roi_align.roi_align(view, rois.to(DEVICE), 0.5, 3, 3, 2, True)
        torch.testing.assert_close(out.cpu().double(), expected, rtol=1e-5, atol=1e-5)


def test_matches_native_op(triton_roi_align):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 12, 10, generator=g)
    rois = random_rois(g, 5, 2, 12, 10, 0.5, torch.float32)
    native = maskx_kernels.roi_align(x, rois, (3, 2), 0.5, 0, False)
    out = triton_roi_align.roi_align(x.to(DEVICE), rois.to(DEVICE), 0.5, 3, 2, 0, False)
    torch.testing.assert_close(out.cpu(), native, rtol=1e-5, atol=1e-5)


def test_empty_rois_and_empty_map(triton_roi_align):
    x = torch.randn(2, 3, 5, 5, device=DEVICE)
    out = triton_roi_align.roi_align(x, torch.empty(0, 5, device=DEVICE), 1.0, 2, 2, 2, False)
    assert out.shape == (0, 3, 2, 2)
    rois = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]], device=DEVICE)
    out = triton_roi_align.roi_align(torch.randn(1, 3, 0, 4, device=DEVICE), rois, 1.0, 2, 2, 2, False)
    assert out.shape == (1, 3, 2, 2) and bool((out == 0).all())


@pytest.mark.parametrize("aligned,ratio", [(False, 0), (True, 2)])
def test_backward_matches_reference(triton_roi_align, deterministic, aligned, ratio):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64)
    rois = random_rois(g, 4, 2, 7, 8, 0.5, torch.float64)
    grad = torch.randn(4, 3, 2, 3, generator=g, dtype=torch.float64)
    x_ref = x.clone().requires_grad_()
    reference.roi_align(x_ref, rois, 0.5, 2, 3, ratio, aligned).backward(grad)
    x_dev = x.to(DEVICE).requires_grad_()
    triton_roi_align.roi_align(x_dev, rois.to(DEVICE), 0.5, 2, 3, ratio, aligned).backward(grad.to(DEVICE))
    torch.testing.assert_close(x_dev.grad.cpu(), x_ref.grad, rtol=1e-10, atol=1e-10)


def test_backward_float16_accumulates_in_float32(triton_roi_align, deterministic):
    g = torch.Generator().manual_seed(4)
    rois = random_rois(g, 3, 1, 6, 6, 1.0, torch.float16)
    grad = torch.randn(3, 2, 2, 2, generator=g).to(torch.float16)
    expected = torch.ops.maskx._roi_align_backward(grad.float(), rois.float(), 1.0, 2, 2, 1, 2, 6, 6, 2, True)
    out = triton_roi_align.roi_align_backward(grad.to(DEVICE), rois.to(DEVICE), 1.0, 2, 2, 1, 2, 6, 6, 2, True)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.cpu().float(), expected, rtol=2e-3, atol=2e-3)


def test_deterministic_backward_is_reproducible(triton_roi_align):
    g = torch.Generator().manual_seed(8)
    # Overlapping RoIs, including invalid ones that must send nothing.
    rois = random_rois(g, 7, 2, 5, 7, 1.0, torch.float32)
    rois[0, 0] = 2.0
    rois[1, 1] = float("inf")
    grad = torch.randn(7, 2, 2, 2, generator=g)
    args = (1.0, 2, 2, 2, 2, 5, 7, 0, True)
    with deterministic_algorithms(True):
        first = torch.ops.maskx_triton._roi_align_backward(grad.to(DEVICE), rois.to(DEVICE), *args)
        second = torch.ops.maskx_triton._roi_align_backward(grad.to(DEVICE), rois.to(DEVICE), *args)
    assert torch.equal(first, second)
    expected = torch.ops.maskx._roi_align_backward(grad[2:], rois[2:], *args)
    torch.testing.assert_close(first.cpu(), expected, rtol=1e-5, atol=1e-5)


def test_gradcheck(triton_roi_align):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 2, 5, 6, generator=g, dtype=torch.float64, device="cpu").to(DEVICE).requires_grad_()
    rois = torch.tensor([[0, 0.4, 0.7, 4.1, 3.3], [0, -1.2, 1.5, 3.0, 6.5]], dtype=torch.float64, device=DEVICE)
    assert torch.autograd.gradcheck(
        lambda t: triton_roi_align.roi_align(t, rois, 1.0, 2, 2, 2, True), (x,), fast_mode=True
    )


def test_opcheck(triton_roi_align):
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 2, 5, 5, generator=g).to(DEVICE).requires_grad_()
    rois = torch.tensor([[0, 0.5, 0.5, 3.5, 4.0]], device=DEVICE)
    torch.library.opcheck(torch.ops.maskx_triton.roi_align.default, (x, rois, 1.0, 2, 2, 2, False))
    grad = torch.randn(1, 2, 2, 2, generator=g).to(DEVICE)
    torch.library.opcheck(
        torch.ops.maskx_triton._roi_align_backward.default, (grad, rois, 1.0, 2, 2, 1, 2, 5, 5, 2, False)
    )


def test_compile(triton_roi_align):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 3, 6, 5, generator=g).to(DEVICE)
    rois = torch.tensor([[0, 0.5, 1.0, 4.5, 5.0], [0, 2.0, -1.0, 7.0, 3.0]], device=DEVICE)

    def pool(t):
        return torch.ops.maskx_triton.roi_align(t, rois, 0.5, 2, 2, 0, True)

    compiled = torch.compile(pool, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), pool(x))


def test_bad_inputs(triton_roi_align):
    x = torch.randn(2, 3, 5, 5, device=DEVICE)
    with pytest.raises(ValueError, match="batch index"):
        triton_roi_align.roi_align(x, torch.tensor([[2.0, 0, 0, 1, 1]], device=DEVICE), 1.0, 2, 2, 2, False)
    with pytest.raises(ValueError, match="finite"):
        triton_roi_align.roi_align(x, torch.tensor([[0.0, 0, float("nan"), 1, 1]], device=DEVICE), 1.0, 2, 2, 2, False)
    with pytest.raises(ValueError, match=r"Tensor\[K, 5\]"):
        triton_roi_align.roi_align(x, torch.zeros(1, 4, device=DEVICE), 1.0, 2, 2, 2, False)
    with pytest.raises(ValueError, match="dtype"):
        triton_roi_align.roi_align(x, torch.zeros(1, 5, dtype=torch.float64, device=DEVICE), 1.0, 2, 2, 2, False)
    with pytest.raises(ValueError, match="output size"):
        triton_roi_align.roi_align(x, torch.zeros(1, 5, device=DEVICE), 1.0, 0, 2, 2, False)
    with pytest.raises(ValueError, match="grad has shape"):
        triton_roi_align.roi_align_backward(
            torch.zeros(1, 3, 2, 3, device=DEVICE), torch.zeros(1, 5, device=DEVICE), 1.0, 2, 2, 2, 3, 5, 5, 2, False
        )
