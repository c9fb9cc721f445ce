"""Mask logits of each RoI's class on a GPU (R RoIs of 256x28x28 features, C classes):
maskx's CUDA kernel vs torchvision's MaskRCNNPredictor path and vs gather + bmm, forward
and forward+backward; the cases and baselines of bench_mask_logits.py, on the device.
Skipped without a CUDA device."""
import pytest
import torch

from benchmarks.bench_mask_logits import CASES, IMPLS, H, W, make_inputs
from benchmarks.timing import cuda_synchronized, run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROUNDS = 20


def _on_device(rois, classes, requires_grad):
    return [t.cuda().detach().requires_grad_(requires_grad and t.is_floating_point()) for t in make_inputs(rois, classes, False)]


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("rois,classes", CASES)
def test_forward(benchmark, impl, rois, classes):
    args = _on_device(rois, classes, requires_grad=False)
    fn = IMPLS[impl]
    run(benchmark, f"mask_logits gpu forward: {rois} RoIs, {classes} classes", impl, cuda_synchronized(lambda: fn(*args)), ROUNDS)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("rois,classes", CASES)
def test_forward_backward(benchmark, impl, rois, classes):
    features, class_weights, labels, class_bias = _on_device(rois, classes, requires_grad=True)
    grad = torch.randn(rois, H, W, device="cuda")
    fn = IMPLS[impl]

    def step():
        features.grad = class_weights.grad = class_bias.grad = None
        fn(features, class_weights, labels, class_bias).backward(grad)

    group = f"mask_logits gpu forward+backward: {rois} RoIs, {classes} classes"
    run(benchmark, group, impl, cuda_synchronized(step), ROUNDS)
