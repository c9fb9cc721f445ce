"""Mask logits of each RoI's class for R RoIs of 256x28x28 features, C classes:
maskx.per_class_mask_logits vs torchvision's MaskRCNNPredictor path (1x1 conv with all
C classes, then each RoI's channel) and vs the best plain-PyTorch alternative (gather
the class rows, batched matrix-vector product), forward and forward+backward.

The torchvision path with 512 RoIs and 3002 classes is left out: its [512, 3002, 28, 28]
float32 output alone is 4.8 GB (about 9 s per forward on a 2-core machine).

Run: python -m pytest benchmarks/bench_mask_logits.py --benchmark-only --benchmark-columns=median
"""
import functools

import pytest
import torch
import torch.nn.functional as F

import maskx_kernels as mk

K, H, W = 256, 28, 28
CASES = [(100, 81), (100, 3002), (512, 81), (512, 3002)]


def torchvision_path(features, class_weights, classes, class_bias):
    all_classes = F.conv2d(features, class_weights[:, :, None, None], class_bias)
    return all_classes[torch.arange(features.shape[0]), classes]


def gather_bmm_path(features, class_weights, classes, class_bias):
    r = features.shape[0]
    logits = torch.bmm(class_weights[classes][:, None, :], features.flatten(2)).view(r, H, W)
    return logits + class_bias[classes][:, None, None]


IMPLS = {"maskx": mk.per_class_mask_logits, "torchvision": torchvision_path, "gather_bmm": gather_bmm_path}


@functools.cache
def _features(rois):
    """One feature tensor per RoI count, read by every implementation: the reads are
    bound by memory bandwidth, which differs between fresh allocations (page placement)."""
    return torch.randn(rois, K, H, W, generator=torch.Generator().manual_seed(0))


def make_inputs(rois, classes, requires_grad):
    g = torch.Generator().manual_seed(1)
    features = _features(rois).detach().requires_grad_(requires_grad)
    class_weights = (torch.randn(classes, K, generator=g) / 16).requires_grad_(requires_grad)
    class_bias = torch.randn(classes, generator=g).requires_grad_(requires_grad)
    labels = torch.randint(0, classes, (rois,), generator=g)
    return features, class_weights, labels, class_bias


def rounds(impl, rois, classes):
    if impl == "torchvision":
        return 2 if classes > 1000 else 5
    return 10


def _skip_huge(impl, rois, classes):
    if impl == "torchvision" and rois == 512 and classes == 3002:
        pytest.skip("all-class logits of 512 RoIs x 3002 classes take 4.8 GB")


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("rois,classes", CASES)
def test_forward(benchmark, impl, rois, classes):
    _skip_huge(impl, rois, classes)
    args = make_inputs(rois, classes, requires_grad=False)
    benchmark.group = f"mask_logits forward: {rois} RoIs, {classes} classes"
    benchmark.extra_info["impl"] = impl
    fn = IMPLS[impl]
    out = benchmark.pedantic(fn, args=args, rounds=rounds(impl, rois, classes), iterations=1, warmup_rounds=1)
    assert out.shape == (rois, H, W)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("rois,classes", CASES)
def test_forward_backward(benchmark, impl, rois, classes):
    _skip_huge(impl, rois, classes)
    features, class_weights, labels, class_bias = make_inputs(rois, classes, requires_grad=True)
    grad = torch.randn(rois, H, W)
    fn = IMPLS[impl]

    def step():
        features.grad = class_weights.grad = class_bias.grad = None
        fn(features, class_weights, labels, class_bias).backward(grad)

    benchmark.group = f"mask_logits forward+backward: {rois} RoIs, {classes} classes"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(step, rounds=rounds(impl, rois, classes), iterations=1, warmup_rounds=1)
    assert class_weights.grad.shape == (classes, K)
