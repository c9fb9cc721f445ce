"""maskx_kernels.paste_masks and paste_masks_rle on the CPU: torchvision's
paste_masks_in_image (same pixels), the plain-PyTorch reference, pycocotools' RLE,
edge cases, opcheck, torch.compile and bad input; then the CUDA kernels against the CPU
ones (the same per-pixel math, so the same bits)."""
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.models.detection.roi_heads import paste_masks_in_image

import maskx_kernels as mk
from conftest import cpu_and_cuda
from maskx_kernels.reference import paste_masks as ref

# torch's CPU resize is compiled with fused multiply-adds on these (and so are the kernels).
FUSED = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def random_masks(n, m=28, seed=0, dtype=torch.float32, m_w=None):
    g = torch.Generator().manual_seed(seed)
    # Smooth blobs, like a mask head's output: many pixels on either side of 0.5.
    logits = torch.randn(n, 1, 7, 7, generator=g, dtype=torch.float64) * 4
    probs = torch.sigmoid(torch.nn.functional.interpolate(logits, size=(m, m_w or m), mode="bilinear"))[:, 0]
    return probs.to(dtype)


def random_boxes(n, height, width, seed=0, dtype=torch.float32, min_side=1.0, max_side=None):
    """Boxes with sides in [min_side, max_side] (default: the image's larger side) and
    centres inside the image: all overlap it, those near its borders cross them."""
    g = torch.Generator().manual_seed(seed + 1)
    max_side = max_side or max(height, width)
    side = min_side + torch.rand(n, 2, generator=g, dtype=torch.float64) * (max_side - min_side)
    centre = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([width, height])
    return torch.cat([centre - side / 2, centre + side / 2], dim=1).to(dtype)


def case_inputs(case, seed=0, dtype=torch.float32):
    """Masks and boxes of a (masks, mask size, height, width, box side range) case."""
    n, m, height, width, (lo, hi) = case
    masks = random_masks(n, m, seed=n + seed, dtype=dtype)
    boxes = random_boxes(n, height, width, seed=n + seed, dtype=dtype, min_side=lo, max_side=hi)
    return masks, boxes, (height, width)


def torchvision_paste(masks, boxes, size):
    return paste_masks_in_image(masks[:, None], boxes, size)[:, 0]


def assert_same_pixels(out, expected):
    """Bit-for-bit where torch's resize fuses multiply-adds as the kernel does."""
    if FUSED:
        assert torch.equal(out, expected)
    else:
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


# (masks, mask size, image height, image width, box side range)
CASES = [
    (20, 28, 60, 90, (1.0, 40.0)),  # small boxes: torch's four-weight resize
    (12, 28, 300, 400, (60.0, 380.0)),  # big boxes: the generic resize
    (30, 28, 200, 250, (1.0, 250.0)),  # both
    (9, 14, 37, 23, (0.5, 50.0)),
    (6, 5, 50, 70, (20.0, 90.0)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}-{c[2]}x{c[3]}")
def test_matches_torchvision(case):
    n, m, height, width, (lo, hi) = case
    masks = random_masks(n, m, seed=n + m)
    boxes = random_boxes(n, height, width, seed=n, min_side=lo, max_side=hi)
    expected = torchvision_paste(masks, boxes, (height, width))
    probs = mk.paste_masks(masks, boxes, (height, width), threshold=None)
    assert probs.dtype == torch.float32 and probs.shape == (n, height, width)
    assert_same_pixels(probs, expected)
    binary = mk.paste_masks(masks, boxes, (height, width))
    assert binary.dtype == torch.bool
    assert torch.equal(binary, expected > 0.5)
    assert 0 < int(binary.sum()) < binary.numel()


def test_matches_torchvision_float64_and_4d_masks():
    masks = random_masks(10, 28, seed=3, dtype=torch.float64)[:, None]
    boxes = random_boxes(10, 120, 150, seed=3, dtype=torch.float64, min_side=2.0)
    expected = paste_masks_in_image(masks, boxes, (120, 150))
    out = mk.paste_masks(masks, boxes, (120, 150), threshold=None)
    assert out.shape == (10, 1, 120, 150) and out.dtype == torch.float64
    assert_same_pixels(out, expected)
    assert torch.equal(mk.paste_masks(masks, boxes, (120, 150), threshold=0.3), expected > 0.3)


def test_integer_and_degenerate_boxes():
    """Integer corners (clipped detections), zero-width boxes, inverted boxes, a box of
    the whole image and one larger than it."""
    height, width = 40, 50
    boxes = torch.tensor(
        [
            [0.0, 0.0, 49.0, 39.0],
            [0.0, 0.0, 50.0, 40.0],
            [10.0, 10.0, 10.0, 10.0],
            [12.0, 10.0, 5.0, 30.0],
            [3.0, 4.0, 3.0, 25.0],
            [-100.0, -100.0, 200.0, 200.0],
            [7.0, 7.0, 8.0, 8.0],
            [0.25, 0.75, 30.5, 12.25],
        ]
    )
    masks = random_masks(len(boxes), 28, seed=5)
    expected = torchvision_paste(masks, boxes, (height, width))
    assert_same_pixels(mk.paste_masks(masks, boxes, (height, width), threshold=None), expected)
    assert torch.equal(mk.paste_masks(masks, boxes, (height, width)), expected > 0.5)


def test_non_square_masks_and_padding():
    masks = random_masks(6, 12, seed=8, m_w=20)
    boxes = random_boxes(6, 70, 80, seed=8, min_side=5.0)
    for padding in (0, 1, 3):
        expected = ref.paste_masks(masks, boxes, (70, 80), None, padding)
        assert_same_pixels(mk.paste_masks(masks, boxes, (70, 80), None, padding), expected)
    expected = paste_masks_in_image(masks[:, None], boxes, (70, 80), padding=2)[:, 0]
    assert_same_pixels(mk.paste_masks(masks, boxes, (70, 80), None, padding=2), expected)


def test_boxes_outside_the_image():
    """Boxes wholly outside on every side (torchvision's slicing raises for them) paste
    nothing; boxes across a border keep their part inside."""
    height, width = 30, 40
    outside = torch.tensor(
        [
            [-30.0, 5.0, -10.0, 20.0],
            [5.0, -30.0, 20.0, -10.0],
            [50.0, 5.0, 70.0, 20.0],
            [5.0, 45.0, 20.0, 60.0],
            [-60.0, -60.0, -40.0, -40.0],
            [45.0, 35.0, 90.0, 90.0],
        ]
    )
    masks = torch.ones(len(outside), 28, 28)
    out = mk.paste_masks(masks, outside, (height, width), threshold=None)
    assert not bool(out.any())
    assert torch.equal(out, ref.paste_masks(masks, outside, (height, width), None))
    across = torch.tensor([[-15.0, 3.0, 10.0, 20.0], [30.0, 25.0, 55.0, 45.0], [-5.0, -5.0, 45.0, 35.0]])
    masks = random_masks(3, 28, seed=9)
    expected = torchvision_paste(masks, across, (height, width))
    assert_same_pixels(mk.paste_masks(masks, across, (height, width), threshold=None), expected)


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (9, 1), (0, 5), (4, 0)])
def test_tiny_and_empty_images(size):
    masks = random_masks(5, 28, seed=11)
    boxes = torch.tensor([[0.0, 0.0, 0.0, 0.0], [-0.5, -0.5, 0.5, 0.5], [0.0, 0.0, 8.0, 8.0], [-3.0, -3.0, 12.0, 12.0],
                          [2.0, 2.0, 3.0, 3.0]])
    out = mk.paste_masks(masks, boxes, size, threshold=None)
    assert out.shape == (5, *size)
    expected = ref.paste_masks(masks, boxes, size, None)
    assert_same_pixels(out, expected)
    if size[0] > 0 and size[1] > 0:
        assert_same_pixels(out, torchvision_paste(masks, boxes, size))
    rles = mk.paste_masks_rle(masks, boxes, size)
    assert rles == ref.paste_masks_rle(masks, boxes, size)


def test_no_masks_and_zero_masks():
    out = mk.paste_masks(torch.empty(0, 28, 28), torch.empty(0, 4), (20, 30))
    assert out.shape == (0, 20, 30) and out.dtype == torch.bool
    assert mk.paste_masks_rle(torch.empty(0, 28, 28), torch.empty(0, 4), (20, 30)) == []
    boxes = random_boxes(4, 20, 30, seed=2)
    assert not bool(mk.paste_masks(torch.zeros(4, 28, 28), boxes, (20, 30)).any())
    probs = mk.paste_masks(torch.zeros(4, 28, 28), boxes, (20, 30), threshold=None)
    assert probs.abs().sum() == 0
    empty = mask_utils.encode(np.asfortranarray(np.zeros((20, 30), np.uint8)))
    assert mk.paste_masks_rle(torch.zeros(4, 28, 28), boxes, (20, 30)) == [empty] * 4


def test_threshold_is_strict_and_in_the_masks_dtype():
    masks = torch.full((1, 28, 28), 0.5)
    boxes = torch.tensor([[2.0, 2.0, 20.0, 20.0]])
    assert not bool(mk.paste_masks(masks, boxes, (24, 24), threshold=0.5).any())
    assert int(mk.paste_masks(masks, boxes, (24, 24), threshold=0.4999).sum()) > 0
    masks = random_masks(3, 28, seed=4)
    boxes = random_boxes(3, 50, 50, seed=4, min_side=20.0)
    probs = mk.paste_masks(masks, boxes, (50, 50), threshold=None)
    for t in (0.1, 0.3, 0.7):
        assert torch.equal(mk.paste_masks(masks, boxes, (50, 50), threshold=t), probs > t)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_masks(dtype):
    masks = random_masks(8, 28, seed=6)
    boxes = random_boxes(8, 80, 90, seed=6, min_side=5.0)
    expected = mk.paste_masks(masks, boxes, (80, 90), threshold=None)
    out = mk.paste_masks(masks.to(dtype), boxes, (80, 90), threshold=None)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, atol=1e-2, rtol=1e-2)


def test_independent_of_the_thread_count():
    masks = random_masks(7, 28, seed=12)
    boxes = random_boxes(7, 333, 211, seed=12, min_side=40.0)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = mk.paste_masks(masks, boxes, (333, 211), threshold=None)
        one_rle = mk.paste_masks_rle(masks, boxes, (333, 211))
        torch.set_num_threads(max(previous, 2))
        assert torch.equal(mk.paste_masks(masks, boxes, (333, 211), threshold=None), one)
        assert mk.paste_masks_rle(masks, boxes, (333, 211)) == one_rle
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}-{c[2]}x{c[3]}")
@pytest.mark.parametrize("threshold", [0.5, 0.2])
def test_rle_matches_pycocotools(case, threshold):
    n, m, height, width, (lo, hi) = case
    masks = random_masks(n, m, seed=n + m + 1)
    boxes = random_boxes(n, height, width, seed=n + 1, min_side=lo, max_side=hi)
    dense = mk.paste_masks(masks, boxes, (height, width), threshold=threshold)
    expected = [mask_utils.encode(np.asfortranarray(d.numpy().astype(np.uint8))) for d in dense]
    rles = mk.paste_masks_rle(masks, boxes, (height, width), threshold=threshold)
    assert rles == expected
    decoded = mask_utils.decode(rles)
    assert np.array_equal(decoded.transpose(2, 0, 1), dense.numpy().astype(np.uint8))


def test_rle_of_masks_touching_the_borders():
    """Runs that start at the first pixel, end at the last, and span columns."""
    masks = torch.ones(4, 28, 28)
    boxes = torch.tensor([[-5.0, -5.0, 40.0, 30.0], [0.0, 0.0, 10.0, 29.0], [30.0, 20.0, 39.0, 29.0],
                          [10.0, 0.0, 20.0, 29.0]])
    rles = mk.paste_masks_rle(masks, boxes, (30, 40))
    assert rles == ref.paste_masks_rle(masks, boxes, (30, 40))
    assert mask_utils.area(rles[0]) == 30 * 40


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_opcheck(device):
    masks = random_masks(5, 14, seed=13).to(device)
    boxes = random_boxes(5, 40, 50, seed=13).to(device)
    for threshold in (None, 0.5):
        torch.library.opcheck(torch.ops.maskx.paste_masks.default, (masks, boxes, 40, 50, 1, threshold))
    torch.library.opcheck(torch.ops.maskx.paste_masks.default, (masks.double(), boxes.double(), 17, 9, 0, None))
    torch.library.opcheck(torch.ops.maskx.paste_masks.default, (masks[:0], boxes[:0], 40, 50, 1, 0.5))
    torch.library.opcheck(torch.ops.maskx.paste_masks_rle.default, (masks, boxes, 40, 50, 1, 0.5))
    torch.library.opcheck(torch.ops.maskx.paste_masks_rle.default, (masks[:0], boxes[:0], 40, 50, 1, 0.5))


def test_compile():
    masks = random_masks(6, 28, seed=14)
    boxes = random_boxes(6, 64, 48, seed=14)

    def paste(m, b):
        return mk.paste_masks(m, b, (64, 48)), mk.paste_masks(m, b, (64, 48), threshold=None)

    compiled = torch.compile(paste, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(masks, boxes), paste(masks, boxes)):
        assert torch.equal(got, want)


@pytest.mark.parametrize(
    "masks, boxes, size, kwargs, error, match",
    [
        (torch.rand(2, 28), torch.rand(2, 4), (10, 10), {}, ValueError, "masks must be a Tensor\\[N, M, M\\]"),
        (torch.rand(2, 2, 28, 28), torch.rand(2, 4), (10, 10), {}, ValueError, "or Tensor\\[N, 1, M, M\\]"),
        (torch.rand(2, 0, 28), torch.rand(2, 4), (10, 10), {}, ValueError, "masks must have a positive size"),
        (torch.randint(0, 2, (2, 28, 28)), torch.rand(2, 4), (10, 10), {}, ValueError, "floating tensor"),
        (torch.rand(2, 28, 28), torch.rand(3, 4), (10, 10), {}, ValueError, "one box per mask"),
        (torch.rand(2, 28, 28), torch.rand(2, 5), (10, 10), {}, ValueError, "boxes must be a Tensor\\[N, 4\\]"),
        (torch.rand(2, 28, 28), torch.rand(2, 4).half(), (10, 10), {}, ValueError, "float32 or float64"),
        (torch.rand(2, 28, 28), torch.rand(2, 4), (-1, 10), {}, ValueError, "image size must be non-negative"),
        (torch.rand(2, 28, 28), torch.rand(2, 4), (10,), {}, ValueError, "image_size must be \\(height, width\\)"),
        (torch.rand(2, 28, 28), torch.rand(2, 4), (10, 10), {"padding": -1}, ValueError, "padding must be in"),
        (torch.rand(2, 28, 28), torch.rand(2, 4), (10, 10), {"threshold": float("nan")}, ValueError,
         "threshold must be finite"),
        (torch.rand(2, 28, 28), torch.tensor([[0.0, 0, 5, 5], [0, 0, float("inf"), 5]]), (10, 10), {}, ValueError,
         "box 1 = .* needs finite coordinates"),
        (torch.rand(2, 28, 28), torch.tensor([[0.0, 0, 5, 5], [float("nan"), 0, 5, 5]]), (10, 10), {}, ValueError,
         "box 1 = .* needs finite coordinates"),
        (torch.rand(1, 28, 28), torch.tensor([[0.0, 0, 5, 3e9]]), (10, 10), {}, ValueError, "within \\+-2\\^30"),
    ],
)
def test_bad_input(masks, boxes, size, kwargs, error, match):
    with pytest.raises(error, match=match):
        mk.paste_masks(masks, boxes, size, **kwargs)
    with pytest.raises(error, match=match):
        mk.paste_masks_rle(masks, boxes, size, **kwargs)
    if masks.dim() == 3 and len(size) == 2:
        threshold = kwargs.get("threshold", 0.5)
        with pytest.raises(ValueError):
            torch.ops.maskx.paste_masks(masks, boxes, size[0], size[1], kwargs.get("padding", 1), threshold)
        with pytest.raises(ValueError):
            torch.ops.maskx.paste_masks_rle(masks, boxes, size[0], size[1], kwargs.get("padding", 1), threshold)


def test_bad_device():
    with pytest.raises(ValueError, match="one device"):
        mk.paste_masks(torch.rand(2, 28, 28), torch.rand(2, 4, device="meta"), (10, 10))


# CUDA: the kernels against the CPU ones, bit for bit.
CUDA_CASES = [(20, 28, 60, 90, (1.0, 40.0)), (12, 28, 300, 400, (60.0, 380.0)), (100, 28, 800, 1333, (16.0, 600.0))]


@pytest.mark.needs_cuda
@pytest.mark.parametrize("case", CUDA_CASES, ids=lambda c: f"{c[0]}x{c[1]}-{c[2]}x{c[3]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(case, dtype):
    masks, boxes, (height, width) = case_inputs(case, dtype=dtype)
    for threshold in (None, 0.5):
        expected = mk.paste_masks(masks, boxes, (height, width), threshold=threshold)
        out = mk.paste_masks(masks.cuda(), boxes.cuda(), (height, width), threshold=threshold)
        assert out.device.type == "cuda" and out.dtype == expected.dtype
        assert torch.equal(out.cpu(), expected)
    assert mk.paste_masks_rle(masks.cuda(), boxes.cuda(), (height, width)) == mk.paste_masks_rle(
        masks, boxes, (height, width)
    )


@pytest.mark.needs_cuda
def test_cuda_thresholded_matches_torchvision():
    masks = random_masks(30, 28, seed=3).cuda()
    boxes = random_boxes(30, 200, 300, seed=3, min_side=2.0).cuda()
    expected = paste_masks_in_image(masks[:, None], boxes, (200, 300))[:, 0]
    probs = mk.paste_masks(masks, boxes, (200, 300), threshold=None)
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
    settled = (expected - 0.5).abs() > 1e-5
    assert torch.equal(mk.paste_masks(masks, boxes, (200, 300))[settled], (expected > 0.5)[settled])


@pytest.mark.needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_low_precision_matches_cpu(dtype):
    masks = random_masks(8, 28, seed=6)
    boxes = random_boxes(8, 80, 90, seed=6, min_side=5.0)
    expected = mk.paste_masks(masks.to(dtype), boxes, (80, 90), threshold=None)
    out = mk.paste_masks(masks.to(dtype).cuda(), boxes.cuda(), (80, 90), threshold=None)
    assert torch.equal(out.cpu(), expected)


@pytest.mark.needs_cuda
def test_cuda_outside_empty_and_tiny():
    masks = torch.ones(3, 28, 28, device="cuda")
    boxes = torch.tensor([[-30.0, 2.0, -10.0, 9.0], [50.0, 50.0, 60.0, 60.0], [-5.0, -5.0, 6.0, 4.0]], device="cuda")
    for size in [(12, 16), (1, 1), (0, 4)]:
        assert torch.equal(mk.paste_masks(masks, boxes, size).cpu(), mk.paste_masks(masks.cpu(), boxes.cpu(), size))
        assert mk.paste_masks_rle(masks, boxes, size) == mk.paste_masks_rle(masks.cpu(), boxes.cpu(), size)
    assert mk.paste_masks(masks[:0], boxes[:0], (5, 5)).shape == (0, 5, 5)
    assert mk.paste_masks_rle(masks[:0], boxes[:0], (5, 5)) == []


@pytest.mark.needs_cuda
def test_cuda_compile_inductor():
    # The default backend (inductor) on the GPU; test_compile runs aot_eager.
    masks = random_masks(5, 14, seed=13).cuda()
    boxes = random_boxes(5, 40, 50, seed=13).cuda()
    compiled = torch.compile(lambda m, b: mk.paste_masks(m, b, (40, 50)), fullgraph=True)
    assert torch.equal(compiled(masks, boxes), mk.paste_masks(masks, boxes, (40, 50)))


@pytest.mark.needs_cuda
def test_cuda_bad_boxes():
    with pytest.raises(ValueError, match="needs finite coordinates"):
        mk.paste_masks(torch.rand(1, 8, 8, device="cuda"), torch.tensor([[0.0, 0, float("inf"), 3]], device="cuda"),
                       (10, 10))
    with pytest.raises(ValueError, match="needs finite coordinates"):
        torch.ops.maskx.paste_masks_rle(torch.rand(1, 8, 8, device="cuda"),
                                        torch.tensor([[0.0, 0, float("nan"), 3]], device="cuda"), 10, 10, 1, 0.5)
