"""CUDA kernels of maskx::paste_masks and maskx::paste_masks_rle against the CPU kernels
(the same per-pixel math, so the same bits). Skipped without a CUDA device."""
import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

import maskx_kernels as mk
from test_paste_masks import random_boxes, random_masks

pytestmark = pytest.mark.needs_cuda

CASES = [(20, 28, 60, 90, (1.0, 40.0)), (12, 28, 300, 400, (60.0, 380.0)), (100, 28, 800, 1333, (16.0, 600.0))]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}-{c[2]}x{c[3]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_cpu(case, dtype):
    n, m, height, width, (lo, hi) = case
    masks = random_masks(n, m, seed=n, dtype=dtype)
    boxes = random_boxes(n, height, width, seed=n, dtype=dtype, min_side=lo, max_side=hi)
    for threshold in (None, 0.5):
        expected = mk.paste_masks(masks, boxes, (height, width), threshold=threshold)
        out = mk.paste_masks(masks.cuda(), boxes.cuda(), (height, width), threshold=threshold)
        assert out.device.type == "cuda" and out.dtype == expected.dtype
        assert torch.equal(out.cpu(), expected)
    assert mk.paste_masks_rle(masks.cuda(), boxes.cuda(), (height, width)) == mk.paste_masks_rle(
        masks, boxes, (height, width)
    )


def test_thresholded_matches_torchvision_on_cuda():
    masks = random_masks(30, 28, seed=3).cuda()
    boxes = random_boxes(30, 200, 300, seed=3, min_side=2.0).cuda()
    expected = paste_masks_in_image(masks[:, None], boxes, (200, 300))[:, 0]
    probs = mk.paste_masks(masks, boxes, (200, 300), threshold=None)
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
    settled = (expected - 0.5).abs() > 1e-5
    assert torch.equal(mk.paste_masks(masks, boxes, (200, 300))[settled], (expected > 0.5)[settled])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(dtype):
    masks = random_masks(8, 28, seed=6)
    boxes = random_boxes(8, 80, 90, seed=6, min_side=5.0)
    expected = mk.paste_masks(masks.to(dtype), boxes, (80, 90), threshold=None)
    out = mk.paste_masks(masks.to(dtype).cuda(), boxes.cuda(), (80, 90), threshold=None)
    assert torch.equal(out.cpu(), expected)


def test_outside_empty_and_tiny():
    masks = torch.ones(3, 28, 28, device="cuda")
    boxes = torch.tensor([[-30.0, 2.0, -10.0, 9.0], [50.0, 50.0, 60.0, 60.0], [-5.0, -5.0, 6.0, 4.0]], device="cuda")
    for size in [(12, 16), (1, 1), (0, 4)]:
        assert torch.equal(mk.paste_masks(masks, boxes, size).cpu(), mk.paste_masks(masks.cpu(), boxes.cpu(), size))
        assert mk.paste_masks_rle(masks, boxes, size) == mk.paste_masks_rle(masks.cpu(), boxes.cpu(), size)
    assert mk.paste_masks(masks[:0], boxes[:0], (5, 5)).shape == (0, 5, 5)
    assert mk.paste_masks_rle(masks[:0], boxes[:0], (5, 5)) == []


def test_opcheck_and_compile():
    masks = random_masks(5, 14, seed=13).cuda()
    boxes = random_boxes(5, 40, 50, seed=13).cuda()
    for threshold in (None, 0.5):
        torch.library.opcheck(torch.ops.maskx.paste_masks.default, (masks, boxes, 40, 50, 1, threshold))
    torch.library.opcheck(torch.ops.maskx.paste_masks_rle.default, (masks, boxes, 40, 50, 1, 0.5))
    compiled = torch.compile(lambda m, b: mk.paste_masks(m, b, (40, 50)), fullgraph=True)
    assert torch.equal(compiled(masks, boxes), mk.paste_masks(masks, boxes, (40, 50)))


def test_bad_boxes():
    with pytest.raises(ValueError, match="needs finite coordinates"):
        mk.paste_masks(torch.rand(1, 8, 8, device="cuda"), torch.tensor([[0.0, 0, float("inf"), 3]], device="cuda"),
                       (10, 10))
    with pytest.raises(ValueError, match="needs finite coordinates"):
        torch.ops.maskx.paste_masks_rle(torch.rand(1, 8, 8, device="cuda"),
                                        torch.tensor([[0.0, 0, float("nan"), 3]], device="cuda"), 10, 10, 1, 0.5)
