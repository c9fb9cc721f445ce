"""The Triton IoU-mask NMS against the reference (in the interpreter on the CPU)."""
import pytest
import torch

from conftest import TRITON_DEVICE as DEVICE
from maskx_kernels.reference.batched_nms import batched_nms as reference_batched_nms
from maskx_kernels.reference.nms import nms as reference_nms
from nms_cases import detector_boxes, near_threshold_pairs

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def triton_nms():
    from maskx_kernels.triton.nms import nms_forward

    return nms_forward


@pytest.mark.parametrize("n", [1, 5, 64, 65, 200])
@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_matches_reference(triton_nms, n, threshold):
    boxes, scores = detector_boxes(n, seed=n)
    kept = triton_nms(boxes.to(DEVICE), scores.to(DEVICE), threshold).cpu()
    assert torch.equal(kept, reference_nms(boxes, scores, threshold))


def test_dense_overlaps(triton_nms):
    g = torch.Generator().manual_seed(1)
    centre = torch.rand(150, 2, generator=g) * 60
    boxes = torch.cat([centre, centre + 30 + torch.rand(150, 2, generator=g) * 10], dim=1)
    scores = torch.randint(0, 6, (150,), generator=g).float()  # many ties
    kept = triton_nms(boxes.to(DEVICE), scores.to(DEVICE), 0.5).cpu()
    assert torch.equal(kept, reference_nms(boxes, scores, 0.5))
    assert 1 < kept.numel() < 100


@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_near_threshold(triton_nms, threshold):
    boxes, scores = near_threshold_pairs(threshold)
    kept = triton_nms(boxes.to(DEVICE), scores.to(DEVICE), threshold).cpu()
    assert torch.equal(kept, reference_nms(boxes, scores, threshold))


def test_float64_and_degenerate(triton_nms):
    boxes, scores = detector_boxes(120, seed=7, dtype=torch.float64)
    boxes[:30, 2] = boxes[:30, 0] - 1  # negative width
    scores[:30] += 1
    kept = triton_nms(boxes.to(DEVICE), scores.to(DEVICE), 0.0).cpu()
    assert torch.equal(kept, reference_nms(boxes, scores, 0.0))
    assert set(range(30)) <= set(kept.tolist())


def test_batched(triton_nms):
    boxes, scores = detector_boxes(180, seed=11)
    boxes = torch.cat([boxes, boxes + 0.5])
    scores = torch.cat([scores, scores / 2])
    idxs = torch.randint(0, 3, (360,), generator=torch.Generator().manual_seed(11))
    kept = triton_nms(boxes.to(DEVICE), scores.to(DEVICE), 0.5, idxs.to(DEVICE)).cpu()
    assert torch.equal(kept, reference_batched_nms(boxes, scores, idxs, 0.5))


def test_empty_and_bad_input(triton_nms):
    assert triton_nms(torch.empty(0, 4, device=DEVICE), torch.empty(0, device=DEVICE), 0.5).shape == (0,)
    with pytest.raises(ValueError, match="boxes must be a Tensor\\[N, 4\\]"):
        triton_nms(torch.rand(3, 5, device=DEVICE), torch.rand(3, device=DEVICE), 0.5)
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        triton_nms(torch.rand(3, 4, device=DEVICE), torch.rand(3, device=DEVICE), 1.5)


def test_non_finite(triton_nms):
    boxes = torch.tensor([[0.0, 0.0, 1.0, float("nan")]], device=DEVICE)
    with pytest.raises(ValueError, match="boxes must be finite"):
        triton_nms(boxes, torch.ones(1, device=DEVICE), 0.5)
