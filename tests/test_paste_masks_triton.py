"""maskx_kernels.triton.paste_masks against the native kernel and the plain-PyTorch
reference (on the CPU through TRITON_INTERPRET=1, whose fused multiply-adds are not
fused: values agree to float rounding, pixels away from the threshold exactly)."""
import pytest
import torch

import maskx_kernels as mk
from conftest import TRITON_DEVICE as DEVICE
from maskx_kernels.reference import paste_masks as ref
from maskx_kernels.triton.paste_masks import paste_masks_forward
from test_paste_masks import case_inputs

pytestmark = pytest.mark.triton


def assert_close_pixels(probs, binary, expected, threshold=0.5):
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
    settled = (expected - threshold).abs() > 1e-5
    assert torch.equal(binary[settled], (expected > threshold)[settled])


# (masks, mask size, image height, image width, box side range): small and big boxes.
CASES = [(4, 28, 24, 40, (1.0, 30.0)), (3, 14, 70, 50, (30.0, 90.0)), (2, 6, 9, 1, (0.5, 12.0))]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}-{c[2]}x{c[3]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(case, dtype):
    masks, boxes, (height, width) = case_inputs(case, dtype=dtype)
    expected = ref.paste_masks(masks, boxes, (height, width), None)
    probs = paste_masks_forward(masks.to(DEVICE), boxes.to(DEVICE), (height, width), threshold=None)
    binary = paste_masks_forward(masks.to(DEVICE), boxes.to(DEVICE), (height, width))
    assert probs.dtype == dtype and binary.dtype == torch.bool
    assert_close_pixels(probs.cpu(), binary.cpu(), expected)
    native = mk.paste_masks(masks, boxes, (height, width), threshold=None)
    torch.testing.assert_close(probs.cpu(), native, rtol=0, atol=1e-6)


def test_outside_boxes_empty_and_4d():
    masks = torch.ones(3, 1, 8, 8, device=DEVICE)
    boxes = torch.tensor([[-30.0, 2.0, -10.0, 9.0], [50.0, 50.0, 60.0, 60.0], [-5.0, -5.0, 6.0, 4.0]], device=DEVICE)
    out = paste_masks_forward(masks, boxes, (12, 16))
    assert out.shape == (3, 1, 12, 16)
    assert torch.equal(out.cpu(), mk.paste_masks(masks.cpu(), boxes.cpu(), (12, 16)))
    assert not bool(out[:2].any()) and bool(out[2].any())
    assert paste_masks_forward(masks[:0], boxes[:0], (12, 16)).shape == (0, 1, 12, 16)
    assert paste_masks_forward(masks, boxes, (0, 16)).shape == (3, 1, 0, 16)


def test_bad_input():
    with pytest.raises(ValueError, match="one box per mask"):
        paste_masks_forward(torch.rand(2, 8, 8, device=DEVICE), torch.rand(3, 4, device=DEVICE), (10, 10))
    with pytest.raises(ValueError, match="needs finite coordinates"):
        paste_masks_forward(torch.rand(1, 8, 8, device=DEVICE), torch.tensor([[0.0, 0, float("nan"), 3]],
                                                                                 device=DEVICE), (10, 10))
