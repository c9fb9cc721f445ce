"""maskx_kernels.nms against torchvision.ops.nms and the plain-PyTorch reference."""
import pytest
import torch
import torchvision

import maskx_kernels
from maskx_kernels.reference.nms import nms as reference_nms
from nms_cases import detector_boxes, near_threshold_pairs


@pytest.mark.parametrize("n", [1, 2, 7, 64, 129, 1000, 4099])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_matches_torchvision(n, threshold):
    boxes, scores = detector_boxes(n, seed=n)
    expected = torchvision.ops.nms(boxes, scores, threshold)
    assert torch.equal(maskx_kernels.nms(boxes, scores, threshold), expected)


def test_matches_torchvision_dense_clusters():
    # Many heavily overlapping boxes: most candidates are suppressed, in long chains.
    g = torch.Generator().manual_seed(3)
    centres = torch.rand(40, 2, generator=g) * 500
    jitter = torch.randn(6000, 2, generator=g) * 6
    centre = centres[torch.randint(0, 40, (6000,), generator=g)] + jitter
    size = 40 + torch.randn(6000, 2, generator=g) * 5
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    scores = torch.randperm(6000, generator=g).float() / 6000
    for threshold in (0.0, 0.4, 0.9):
        assert torch.equal(maskx_kernels.nms(boxes, scores, threshold), torchvision.ops.nms(boxes, scores, threshold))


def test_matches_torchvision_50k():
    boxes, scores = detector_boxes(50_000, seed=50)
    assert torch.equal(maskx_kernels.nms(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.3, 0.123456789])
def test_near_threshold_matches_torchvision(threshold):
    boxes, scores = near_threshold_pairs(threshold)
    kept = maskx_kernels.nms(boxes, scores, threshold)
    assert torch.equal(kept, torchvision.ops.nms(boxes, scores, threshold))
    assert torch.equal(kept, reference_nms(boxes, scores, threshold))
    # The construction straddles the threshold: some pairs are suppressed, some not.
    assert boxes.shape[0] // 2 < kept.numel() < boxes.shape[0]


def test_float64_matches_torchvision():
    boxes, scores = detector_boxes(2000, seed=64, dtype=torch.float64)
    assert torch.equal(maskx_kernels.nms(boxes, scores, 0.45), torchvision.ops.nms(boxes, scores, 0.45))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_matches_reference(dtype):
    boxes, scores = detector_boxes(700, seed=7, dtype=dtype)
    assert torch.equal(maskx_kernels.nms(boxes, scores, 0.5), reference_nms(boxes, scores, 0.5))


def test_ties_lower_index_first():
    boxes, _ = detector_boxes(900, seed=9)
    scores = torch.randint(0, 5, (900,), generator=torch.Generator().manual_seed(9)).float() / 5
    assert torch.equal(maskx_kernels.nms(boxes, scores, 0.5), reference_nms(boxes, scores, 0.5))
    # Two identical boxes with one score: the lower index is kept.
    box = torch.tensor([[1.0, 2.0, 30.0, 40.0]] * 3)
    assert maskx_kernels.nms(box, torch.tensor([0.5, 0.5, 0.5]), 0.5).tolist() == [0]


def test_duplicates():
    boxes, scores = detector_boxes(300, seed=11)
    boxes = torch.cat([boxes, boxes, boxes])
    scores = torch.cat([scores, scores * 0.5, scores * 0.25])
    kept = maskx_kernels.nms(boxes, scores, 0.99)
    assert torch.equal(kept, torchvision.ops.nms(boxes, scores, 0.99))
    assert kept.max() < 300


def test_degenerate_boxes_have_zero_iou():
    boxes, scores = detector_boxes(500, seed=13)
    degenerate = boxes[:200].clone()
    degenerate[:70, 2] = degenerate[:70, 0]  # zero width
    degenerate[70:140, 3] = degenerate[70:140, 1] - 4  # negative height
    degenerate[140:, :2], degenerate[140:, 2:] = boxes[140:200, 2:], boxes[140:200, :2]  # inverted
    all_boxes = torch.cat([boxes, degenerate])
    all_scores = torch.cat([scores, scores[:200] + 2])  # the degenerate boxes come first
    kept = maskx_kernels.nms(all_boxes, all_scores, 0.0)
    assert set(range(500, 700)) <= set(kept.tolist())
    assert torch.equal(kept, torchvision.ops.nms(all_boxes, all_scores, 0.0))
    assert torch.equal(kept, reference_nms(all_boxes, all_scores, 0.0))
    # A point box on top of a kept box survives any threshold.
    pair = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    assert maskx_kernels.nms(pair, torch.tensor([1.0, 0.5]), 0.0).tolist() == [0, 1]


def test_threshold_bounds():
    boxes, scores = detector_boxes(400, seed=17)
    assert maskx_kernels.nms(boxes, scores, 1.0).numel() == 400
    assert torch.equal(maskx_kernels.nms(boxes, scores, 0.0), torchvision.ops.nms(boxes, scores, 0.0))


def test_empty():
    out = maskx_kernels.nms(torch.empty(0, 4), torch.empty(0), 0.5)
    assert out.dtype == torch.long and out.shape == (0,)


def test_non_contiguous():
    boxes, scores = detector_boxes(600, seed=19)
    wide = torch.cat([boxes, boxes], dim=1)[:, ::2]
    wide[:] = boxes
    strided_scores = torch.stack([scores, scores], dim=1)[:, 1]
    assert torch.equal(maskx_kernels.nms(wide, strided_scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))


def test_opcheck():
    for n, seed in [(0, 0), (1, 1), (300, 2)]:
        boxes, scores = detector_boxes(n, seed=seed)
        torch.library.opcheck(torch.ops.maskx.nms.default, (boxes, scores, 0.5))
    boxes, scores = detector_boxes(50, seed=3, dtype=torch.float64)
    torch.library.opcheck(torch.ops.maskx.nms.default, (boxes, scores, 0.6))


def test_compile():
    boxes, scores = detector_boxes(500, seed=23)
    compiled = torch.compile(maskx_kernels.nms, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(boxes, scores, 0.5), torchvision.ops.nms(boxes, scores, 0.5))


def test_compile_inside_model():
    def keep_boxes(boxes, scores):
        return boxes[maskx_kernels.nms(boxes, scores * 2, 0.5)]

    boxes, scores = detector_boxes(300, seed=29)
    compiled = torch.compile(keep_boxes, fullgraph=True, backend="aot_eager", dynamic=True)
    assert torch.equal(compiled(boxes, scores), keep_boxes(boxes, scores))


@pytest.mark.parametrize(
    "boxes, scores, threshold, match",
    [
        (torch.rand(5, 5), torch.rand(5), 0.5, "boxes must be a Tensor\\[N, 4\\]"),
        (torch.rand(5), torch.rand(5), 0.5, "boxes must be a Tensor\\[N, 4\\]"),
        (torch.rand(5, 4), torch.rand(4), 0.5, "scores must be a Tensor\\[N\\]"),
        (torch.rand(5, 4), torch.rand(5, 1), 0.5, "scores must be a Tensor\\[N\\]"),
        (torch.randint(0, 9, (5, 4)), torch.rand(5), 0.5, "boxes must be a floating tensor"),
        (torch.rand(5, 4), torch.randint(0, 9, (5,)), 0.5, "must have the dtype of boxes"),
        (torch.rand(5, 4), torch.rand(5, dtype=torch.float64), 0.5, "must have the dtype of boxes"),
        (torch.rand(5, 4), torch.rand(5), -0.1, "iou_threshold must be in \\[0, 1\\]"),
        (torch.rand(5, 4), torch.rand(5), 1.5, "iou_threshold must be in \\[0, 1\\]"),
        (torch.rand(5, 4), torch.rand(5), float("nan"), "iou_threshold must be in \\[0, 1\\]"),
        (torch.tensor([[0.0, 0, 1, float("inf")]]), torch.rand(1), 0.5, "boxes must be finite"),
        (torch.tensor([[0.0, 0, 1, float("nan")]]), torch.rand(1), 0.5, "boxes must be finite"),
        (torch.rand(2, 4), torch.tensor([0.5, float("nan")]), 0.5, "scores must be finite"),
        (torch.rand(2, 4), torch.tensor([0.5, -float("inf")]), 0.5, "scores must be finite"),
    ],
)
def test_bad_input(boxes, scores, threshold, match):
    with pytest.raises(ValueError, match=match):
        maskx_kernels.nms(boxes, scores, threshold)
    # The op itself checks too (ValueError from the native kernel).
    with pytest.raises(ValueError):
        torch.ops.maskx.nms(boxes, scores, threshold)


def test_bad_device():
    with pytest.raises(ValueError, match="one device"):
        maskx_kernels.nms(torch.rand(3, 4), torch.rand(3, device="meta"), 0.5)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype):
    cases = [detector_boxes(n, seed=n, dtype=dtype) for n in (1, 64, 65, 3000)]
    boxes, _ = detector_boxes(500, seed=5, dtype=dtype)
    cases.append((boxes, torch.randint(0, 4, (500,)).to(dtype)))  # ties
    if dtype == torch.float32:
        cases.append(near_threshold_pairs(0.5))
    for boxes, scores in cases:
        expected = maskx_kernels.nms(boxes, scores, 0.5)
        assert torch.equal(maskx_kernels.nms(boxes.cuda(), scores.cuda(), 0.5).cpu(), expected)
    with pytest.raises(ValueError, match="boxes must be finite"):
        maskx_kernels.nms(torch.full((2, 4), float("nan"), device="cuda"), torch.rand(2, device="cuda"), 0.5)
