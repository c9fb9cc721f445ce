"""Partially supervised mask loss of 200 RoIs of 256x28x28 features, 81 classes:
maskx.per_class_mask_loss vs the best plain-PyTorch path (every RoI's logits by
gather + batched matmul, then the binary cross-entropy of the valid RoIs), forward and
forward+backward.

Valid RoIs (their class has masks, set A) are all of them, or half of them: in a block
(a batch whose first images hold the set-A objects) or alternating. maskx reads only the
valid RoIs' features. The baseline computes every RoI's logits: selecting the valid
features first would copy them, more memory traffic than the logits it saves.

Run: python -m benchmarks -k mask_loss
"""
import pytest
import torch
import torch.nn.functional as F

import maskx_kernels as mk
from benchmarks.bench_mask_logits import gather_bmm_path, make_inputs
from benchmarks.timing import run

ROIS, CLASSES, H, W = 200, 81, 28, 28
VALID = {
    "all valid": lambda: torch.ones(ROIS, dtype=torch.bool),
    "half valid, in a block": lambda: torch.arange(ROIS) < ROIS // 2,
    "half valid, alternating": lambda: torch.arange(ROIS) % 2 == 0,
}


def gather_bmm_loss(features, class_weights, classes, class_bias, targets, valid):
    logits = gather_bmm_path(features, class_weights, classes, class_bias)
    return F.binary_cross_entropy_with_logits(logits[valid], targets[valid])


def maskx_loss(features, class_weights, classes, class_bias, targets, valid):
    return mk.per_class_mask_loss(features, class_weights, classes, targets, class_bias, valid=valid)


IMPLS = {"maskx": maskx_loss, "gather_bmm": gather_bmm_loss}


def _inputs(valid_kind, requires_grad):
    features, class_weights, classes, class_bias = make_inputs(ROIS, CLASSES, requires_grad)
    targets = (torch.rand(ROIS, H, W, generator=torch.Generator().manual_seed(2)) > 0.5).to(features.dtype)
    return features, class_weights, classes, class_bias, targets, VALID[valid_kind]()


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("valid_kind", list(VALID))
def test_forward(benchmark, impl, valid_kind):
    args = _inputs(valid_kind, requires_grad=False)
    loss = run(benchmark, f"mask_loss forward: {ROIS} RoIs, {valid_kind}", impl, lambda: IMPLS[impl](*args), rounds=10)
    assert loss.dim() == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("valid_kind", list(VALID))
def test_forward_backward(benchmark, impl, valid_kind):
    features, class_weights, classes, class_bias, targets, valid = _inputs(valid_kind, requires_grad=True)

    def step():
        features.grad = class_weights.grad = class_bias.grad = None
        IMPLS[impl](features, class_weights, classes, class_bias, targets, valid).backward()

    run(benchmark, f"mask_loss forward+backward: {ROIS} RoIs, {valid_kind}", impl, step, rounds=10)
    assert features.grad.shape == features.shape
