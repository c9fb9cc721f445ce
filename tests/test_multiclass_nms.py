"""maskx_kernels.multiclass_nms against the plain-PyTorch reference and torchvision's
postprocess_detections recipe."""
import pytest
import torch
import torchvision

import maskx_kernels
from maskx_kernels.reference.multiclass_nms import multiclass_nms as reference_multiclass_nms
from nms_cases import detector_boxes


def detections(rows, num_classes, seed, dtype=torch.float32, per_class=True, peak=4.0):
    """Detector-like outputs: a box per (row, class) jittered around the row's box, and
    softmax scores over random logits (larger `peak`, fewer classes above a threshold)."""
    g = torch.Generator().manual_seed(seed)
    base, _ = detector_boxes(rows, seed=seed, dtype=torch.float64)
    if per_class:
        boxes = base[:, None, :] + torch.randn(rows, num_classes, 4, generator=g, dtype=torch.float64) * 4
    else:
        boxes = base
    scores = torch.softmax(torch.randn(rows, num_classes, generator=g, dtype=torch.float64) * peak, dim=1)
    return boxes.to(dtype), scores.to(dtype)


def assert_same(result, expected):
    for r, e in zip(result, expected):
        assert r.dtype == e.dtype
        assert torch.equal(r, e)


@pytest.mark.parametrize("rows, num_classes", [(1, 1), (7, 3), (100, 81), (300, 3000), (1000, 2)])
@pytest.mark.parametrize("per_class", [True, False])
def test_matches_reference(rows, num_classes, per_class):
    boxes, scores = detections(rows, num_classes, seed=rows + num_classes, per_class=per_class)
    args = (boxes, scores, 0.05, 0.5, 100)
    assert_same(maskx_kernels.multiclass_nms(*args), reference_multiclass_nms(*args))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_match_reference(dtype):
    boxes, scores = detections(200, 20, seed=3, dtype=dtype)
    args = (boxes, scores, 0.01, 0.6, 1000)
    assert_same(maskx_kernels.multiclass_nms(*args), reference_multiclass_nms(*args))


@pytest.mark.parametrize("max_detections", [0, 1, 17, 10**6])
def test_max_detections(max_detections):
    boxes, scores = detections(150, 30, seed=5, peak=1.0)
    args = (boxes, scores, 0.02, 0.5, max_detections)
    result = maskx_kernels.multiclass_nms(*args)
    assert result[0].shape[0] <= max_detections
    assert_same(result, reference_multiclass_nms(*args))


def test_matches_torchvision_postprocess():
    """torchvision's recipe: score filter, batched_nms, top-k (distinct scores)."""
    rows, num_classes = 1000, 81
    boxes, scores = detections(rows, num_classes, seed=7, peak=2.0)
    flat = scores.reshape(-1)
    flat.copy_(flat + torch.arange(flat.numel()) * 1e-12)  # tie-free
    keep = torch.where(flat > 0.05)[0]
    labels = keep % num_classes
    cand_boxes = boxes.reshape(-1, 4)[keep]
    kept = torchvision.ops.batched_nms(cand_boxes, flat[keep], labels, 0.5)[:100]
    out_boxes, out_scores, out_labels, out_rows = maskx_kernels.multiclass_nms(boxes, scores, 0.05, 0.5, 100)
    assert torch.equal(out_boxes, cand_boxes[kept])
    assert torch.equal(out_scores, flat[keep][kept])
    assert torch.equal(out_labels, labels[kept])
    assert torch.equal(out_rows, keep[kept] // num_classes)


def test_output_semantics():
    boxes, scores = detections(120, 12, seed=11, peak=1.0)
    out_boxes, out_scores, labels, rows = maskx_kernels.multiclass_nms(boxes, scores, 0.05, 0.5, 50)
    assert rows.numel() > 0
    assert torch.equal(out_scores, scores[rows, labels])
    assert torch.equal(out_boxes, boxes[rows, labels])
    assert bool((out_scores > 0.05).all()) and bool((out_scores[:-1] >= out_scores[1:]).all())
    assert int(labels.min()) >= 0 and int(labels.max()) < 12


def test_ties():
    boxes, _ = detections(60, 5, seed=13)
    scores = torch.randint(1, 4, (60, 5), generator=torch.Generator().manual_seed(13)).float() / 4
    args = (boxes, scores, 0.3, 0.4, 1000)
    assert_same(maskx_kernels.multiclass_nms(*args), reference_multiclass_nms(*args))


def test_score_threshold_is_strict():
    boxes, scores = detections(30, 4, seed=17)
    scores[:, 0] = 0.5
    _, out_scores, labels, _ = maskx_kernels.multiclass_nms(boxes, scores, 0.5, 0.5, 1000)
    assert not bool((labels == 0).any())
    assert bool((out_scores > 0.5).all())


def test_empty():
    for boxes, scores in [
        (torch.empty(0, 3, 4), torch.empty(0, 3)),
        (torch.empty(0, 4), torch.empty(0, 3)),
        (torch.rand(4, 0, 4), torch.rand(4, 0)),
    ]:
        out = maskx_kernels.multiclass_nms(boxes, scores, 0.05, 0.5, 100)
        assert [t.shape for t in out] == [(0, 4), (0,), (0,), (0,)]
        assert [t.dtype for t in out] == [torch.float32, torch.float32, torch.long, torch.long]
    boxes, scores = detections(10, 3, seed=19)
    assert maskx_kernels.multiclass_nms(boxes, scores, 1.0, 0.5, 100)[0].shape == (0, 4)


@pytest.mark.parametrize("per_class", [True, False])
def test_gradcheck(per_class):
    boxes, scores = detections(8, 3, seed=23, dtype=torch.float64, per_class=per_class, peak=0.5)
    boxes.requires_grad_(True)
    scores.requires_grad_(True)

    def float_outputs(b, s):
        out_boxes, out_scores, _, _ = maskx_kernels.multiclass_nms(b, s, 0.1, 0.5, 10)
        return out_boxes, out_scores

    assert float_outputs(boxes, scores)[0].shape[0] > 1
    torch.autograd.gradcheck(float_outputs, (boxes, scores))


def test_opcheck():
    for rows, num_classes, per_class in [(0, 3, True), (1, 1, False), (40, 6, True), (40, 6, False)]:
        boxes, scores = detections(rows, num_classes, seed=rows, per_class=per_class, peak=1.0)
        torch.library.opcheck(torch.ops.maskx.multiclass_nms.default, (boxes, scores, 0.05, 0.5, 20))
    boxes, scores = detections(30, 4, seed=29, dtype=torch.float64, peak=0.5)
    boxes.requires_grad_(True)
    scores.requires_grad_(True)
    torch.library.opcheck(torch.ops.maskx.multiclass_nms.default, (boxes, scores, 0.05, 0.5, 20))


def test_compile():
    boxes, scores = detections(200, 10, seed=31)
    compiled = torch.compile(maskx_kernels.multiclass_nms, fullgraph=True, backend="aot_eager")
    assert_same(compiled(boxes, scores, 0.05, 0.5, 30), maskx_kernels.multiclass_nms(boxes, scores, 0.05, 0.5, 30))


@pytest.mark.parametrize(
    "boxes, scores, score_thr, iou_thr, max_det, match",
    [
        (torch.rand(5, 3, 4), torch.rand(5), 0.1, 0.5, 10, "scores must be a Tensor\\[N, C\\]"),
        (torch.rand(5, 2, 4), torch.rand(5, 3), 0.1, 0.5, 10, "boxes must be a Tensor\\[N, C, 4\\] or"),
        (torch.rand(5, 3, 5), torch.rand(5, 3), 0.1, 0.5, 10, "boxes must be a Tensor\\[N, C, 4\\] or"),
        (torch.rand(5, 5), torch.rand(5, 3), 0.1, 0.5, 10, "boxes must be a Tensor\\[N, C, 4\\] or"),
        (torch.rand(4, 4), torch.rand(5, 3), 0.1, 0.5, 10, "boxes must be a Tensor\\[N, C, 4\\] or"),
        (torch.rand(5, 4), torch.rand(5, 3).double(), 0.1, 0.5, 10, "dtype of boxes"),
        (torch.randint(0, 5, (5, 4)), torch.rand(5, 3), 0.1, 0.5, 10, "floating tensor"),
        (torch.rand(5, 4), torch.rand(5, 3), -0.1, 0.5, 10, "score_threshold must be in"),
        (torch.rand(5, 4), torch.rand(5, 3), 0.1, 1.01, 10, "iou_threshold must be in"),
        (torch.rand(5, 4), torch.rand(5, 3), 0.1, 0.5, -1, "max_detections must be non-negative"),
        (torch.full((5, 4), float("nan")), torch.rand(5, 3), 0.1, 0.5, 10, "boxes must be finite"),
        (torch.rand(5, 4), torch.full((5, 3), float("inf")), 0.1, 0.5, 10, "scores must be finite"),
    ],
)
def test_bad_input(boxes, scores, score_thr, iou_thr, max_det, match):
    with pytest.raises(ValueError, match=match):
        maskx_kernels.multiclass_nms(boxes, scores, score_thr, iou_thr, max_det)
    with pytest.raises(ValueError):
        torch.ops.maskx.multiclass_nms(boxes, scores, score_thr, iou_thr, max_det)


def test_bad_device():
    with pytest.raises(ValueError, match="one device"):
        maskx_kernels.multiclass_nms(torch.rand(3, 4), torch.rand(3, 2, device="meta"), 0.1, 0.5, 10)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("per_class", [True, False])
@pytest.mark.parametrize("num_classes", [81, 3000])
def test_cuda_matches_cpu(per_class, num_classes):
    boxes, scores = detections(1000, num_classes, seed=num_classes, per_class=per_class, peak=3.0)
    expected = maskx_kernels.multiclass_nms(boxes, scores, 0.05, 0.5, 100)
    result = maskx_kernels.multiclass_nms(boxes.cuda(), scores.cuda(), 0.05, 0.5, 100)
    assert_same([t.cpu() for t in result], expected)
