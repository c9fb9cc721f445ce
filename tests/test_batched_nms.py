"""maskx_kernels.batched_nms against torchvision.ops.batched_nms and the reference."""
import pytest
import torch
import torchvision

import maskx_kernels
from maskx_kernels.reference.batched_nms import batched_nms as reference_batched_nms
from nms_cases import detector_boxes, near_threshold_pairs


def classes(n, num_classes, seed, dtype=torch.int64):
    return torch.randint(0, num_classes, (n,), generator=torch.Generator().manual_seed(seed)).to(dtype)


# torchvision offsets coordinates by class below 4000 box coordinates, which rounds
# non-integer coordinates; integer coordinates keep its result exact.
@pytest.mark.parametrize("n", [1, 5, 333, 999])
@pytest.mark.parametrize("num_classes", [1, 3, 80, 3000])
def test_matches_torchvision_small(n, num_classes):
    boxes, scores = detector_boxes(n, seed=n + num_classes, integer=True)
    idxs = classes(n, num_classes, seed=n)
    expected = torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(maskx_kernels.batched_nms(boxes, scores, idxs, 0.5), expected)


@pytest.mark.parametrize("num_classes", [1, 2, 80, 3000])
def test_matches_torchvision_large(num_classes):
    boxes, scores = detector_boxes(10_000, seed=num_classes)
    idxs = classes(10_000, num_classes, seed=num_classes)
    expected = torchvision.ops.batched_nms(boxes, scores, idxs, 0.6)
    assert torch.equal(maskx_kernels.batched_nms(boxes, scores, idxs, 0.6), expected)


def test_near_threshold_matches_reference():
    boxes, scores = near_threshold_pairs(0.5)
    idxs = torch.arange(boxes.shape[0]) % 3  # some pairs in one class, some split
    idxs[1::2] = idxs[0::2]
    kept = maskx_kernels.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(kept, reference_batched_nms(boxes, scores, idxs, 0.5))
    assert torch.equal(kept, maskx_kernels.nms(boxes, scores, 0.5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_match_reference(dtype):
    boxes, scores = detector_boxes(600, seed=5, dtype=dtype)
    idxs = classes(600, 7, seed=5)
    assert torch.equal(
        maskx_kernels.batched_nms(boxes, scores, idxs, 0.5), reference_batched_nms(boxes, scores, idxs, 0.5)
    )


@pytest.mark.parametrize("idx_dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_integer_idxs(idx_dtype):
    boxes, scores = detector_boxes(500, seed=31)
    idxs = classes(500, 20, seed=31)
    expected = reference_batched_nms(boxes, scores, idxs, 0.4)
    assert torch.equal(maskx_kernels.batched_nms(boxes, scores, idxs.to(idx_dtype), 0.4), expected)


def test_sparse_and_negative_class_ids():
    boxes, scores = detector_boxes(800, seed=37)
    dense = classes(800, 9, seed=37)
    expected = reference_batched_nms(boxes, scores, dense, 0.5)
    for ids in (dense * 10**15 - 7, -dense, dense * 1_000_003):
        assert torch.equal(maskx_kernels.batched_nms(boxes, scores, ids, 0.5), expected)


def test_ties_and_duplicates():
    boxes, _ = detector_boxes(400, seed=41)
    boxes = torch.cat([boxes, boxes])
    scores = torch.randint(0, 4, (800,), generator=torch.Generator().manual_seed(41)).float()
    idxs = classes(800, 5, seed=41)
    assert torch.equal(
        maskx_kernels.batched_nms(boxes, scores, idxs, 0.5), reference_batched_nms(boxes, scores, idxs, 0.5)
    )


def test_one_class_is_nms():
    boxes, scores = detector_boxes(3000, seed=43)
    idxs = torch.full((3000,), 7)
    assert torch.equal(maskx_kernels.batched_nms(boxes, scores, idxs, 0.5), maskx_kernels.nms(boxes, scores, 0.5))


def test_empty():
    out = maskx_kernels.batched_nms(torch.empty(0, 4), torch.empty(0), torch.empty(0, dtype=torch.long), 0.5)
    assert out.dtype == torch.long and out.shape == (0,)


def test_opcheck():
    for n, seed in [(0, 0), (1, 1), (300, 2)]:
        boxes, scores = detector_boxes(n, seed=seed)
        torch.library.opcheck(torch.ops.maskx.batched_nms.default, (boxes, scores, classes(n, 4, seed), 0.5))


def test_compile():
    boxes, scores = detector_boxes(500, seed=47)
    idxs = classes(500, 10, seed=47)
    compiled = torch.compile(maskx_kernels.batched_nms, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(boxes, scores, idxs, 0.5), maskx_kernels.batched_nms(boxes, scores, idxs, 0.5))


@pytest.mark.parametrize(
    "boxes, scores, idxs, threshold, match",
    [
        (torch.rand(5, 3), torch.rand(5), torch.zeros(5, dtype=torch.long), 0.5, "boxes must be a Tensor\\[N, 4\\]"),
        (torch.rand(5, 4), torch.rand(6), torch.zeros(5, dtype=torch.long), 0.5, "scores must be a Tensor\\[N\\]"),
        (torch.rand(5, 4), torch.rand(5), torch.zeros(4, dtype=torch.long), 0.5, "idxs must be a Tensor\\[N\\]"),
        (torch.rand(5, 4), torch.rand(5), torch.zeros(5), 0.5, "idxs must be an integer tensor"),
        (torch.rand(5, 4), torch.rand(5), torch.zeros(5, dtype=torch.bool), 0.5, "idxs must be an integer tensor"),
        (torch.rand(5, 4).half(), torch.rand(5), torch.zeros(5, dtype=torch.long), 0.5, "dtype of boxes"),
        (torch.rand(5, 4), torch.rand(5), torch.zeros(5, dtype=torch.long), 2.0, "iou_threshold must be in"),
        (torch.full((5, 4), float("inf")), torch.rand(5), torch.zeros(5, dtype=torch.long), 0.5, "boxes must be finite"),
        (torch.rand(5, 4), torch.full((5,), float("nan")), torch.zeros(5, dtype=torch.long), 0.5, "must be finite"),
    ],
)
def test_bad_input(boxes, scores, idxs, threshold, match):
    with pytest.raises(ValueError, match=match):
        maskx_kernels.batched_nms(boxes, scores, idxs, threshold)
    with pytest.raises(ValueError):
        torch.ops.maskx.batched_nms(boxes, scores, idxs, threshold)


def test_bad_device():
    with pytest.raises(ValueError, match="one device"):
        maskx_kernels.batched_nms(torch.rand(3, 4), torch.rand(3), torch.zeros(3, dtype=torch.long, device="meta"), 0.5)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("num_classes", [1, 80, 3000])
def test_cuda_matches_cpu(num_classes):
    boxes, scores = detector_boxes(5000, seed=num_classes)
    idxs = classes(5000, num_classes, seed=num_classes) * 1_000_003 - 5
    expected = maskx_kernels.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(maskx_kernels.batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5).cpu(), expected)
