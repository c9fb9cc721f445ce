"""roi_align and MultiScaleRoIAlign: maskx vs torchvision on the standard workload.

roi_align: input 2x256x200x272 (P2 of two 800x1088 images), 1000 proposal-like RoIs
(benchmarks/workloads.py), spatial_scale 1/4, aligned=True; outputs 7x7 and 14x14,
sampling_ratio 2 and 0 (adaptive), NCHW and channels-last inputs.
MultiScaleRoIAlign: P2-P5 of one 800x1088 image, 256 channels, 1000 RoIs.
"""
import pytest
import torch
import torchvision

import maskx_kernels as mk
from benchmarks.timing import run
from benchmarks.workloads import IMAGE_SIZE, detector_boxes, detector_rois, feature_map, fpn_pyramid

IMPLS = {"maskx": mk.roi_align, "torchvision": torchvision.ops.roi_align}
ROUNDS = {"maskx": 10, "torchvision": 3}


def _inputs(channels_last):
    return feature_map(2, 256, 200, 272, channels_last=channels_last), detector_rois(1000, 2)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("sampling_ratio", [2, 0])
@pytest.mark.parametrize("output_size", [7, 14])
def test_roi_align_forward(benchmark, impl, layout, sampling_ratio, output_size):
    x, rois = _inputs(layout == "channels_last")
    fn = IMPLS[impl]
    group = f"roi_align forward: {output_size}x{output_size} sr={sampling_ratio} {layout}"
    run(benchmark, group, impl, lambda: fn(x, rois, output_size, 0.25, sampling_ratio, True), ROUNDS[impl])


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize(
    "output_size,sampling_ratio,layout", [(7, 2, "nchw"), (14, 2, "nchw"), (7, 0, "nchw"), (7, 2, "channels_last")]
)
def test_roi_align_forward_backward(benchmark, impl, output_size, sampling_ratio, layout):
    x, rois = _inputs(layout == "channels_last")
    x.requires_grad_()
    grad = torch.randn(1000, 256, output_size, output_size)
    fn = IMPLS[impl]

    def step():
        x.grad = None
        fn(x, rois, output_size, 0.25, sampling_ratio, True).backward(grad)

    group = f"roi_align forward+backward: {output_size}x{output_size} sr={sampling_ratio} {layout}"
    run(benchmark, group, impl, step, ROUNDS[impl])


POOLERS = {"maskx": mk.MultiScaleRoIAlign, "torchvision": torchvision.ops.MultiScaleRoIAlign}


@pytest.mark.parametrize("impl", list(POOLERS))
@pytest.mark.parametrize("output_size", [7, 14])
@pytest.mark.parametrize("backward", [False, True])
def test_multi_scale_roi_align(benchmark, impl, output_size, backward):
    names = ["p2", "p3", "p4", "p5"]
    feats = dict(zip(names, fpn_pyramid(batch=1)))
    boxes = [detector_boxes(1000)]
    pooler = POOLERS[impl](names, output_size, 2)
    if backward:
        for f in feats.values():
            f.requires_grad_()
        grad = torch.randn(1000, 256, output_size, output_size)

        def step():
            for f in feats.values():
                f.grad = None
            pooler(feats, boxes, [IMAGE_SIZE]).backward(grad)

    else:

        def step():
            return pooler(feats, boxes, [IMAGE_SIZE])

    kind = "forward+backward" if backward else "forward"
    run(benchmark, f"MultiScaleRoIAlign {kind}: P2-P5 {output_size}x{output_size}", impl, step, ROUNDS[impl])


@pytest.fixture
def output_cache_off():
    """The cases below run with maskx's CPU output cache off (maskx_kernels.cpu_cache):
    every maskx output is fresh memory, as on a call's first use."""
    previous = mk.set_cpu_cache_limit(0)
    yield
    mk.set_cpu_cache_limit(previous)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_roi_align_forward_uncached(benchmark, output_cache_off, impl):
    x, rois = _inputs(False)
    fn = IMPLS[impl]
    group = "roi_align forward, maskx output cache off: 7x7 sr=2 nchw"
    run(benchmark, group, impl, lambda: fn(x, rois, 7, 0.25, 2, True), ROUNDS[impl])


@pytest.mark.parametrize("impl", list(POOLERS))
def test_multi_scale_roi_align_uncached(benchmark, output_cache_off, impl):
    names = ["p2", "p3", "p4", "p5"]
    feats = dict(zip(names, fpn_pyramid(batch=1)))
    boxes = [detector_boxes(1000)]
    pooler = POOLERS[impl](names, 7, 2)
    group = "MultiScaleRoIAlign forward, maskx output cache off: P2-P5 7x7"
    run(benchmark, group, impl, lambda: pooler(feats, boxes, [IMAGE_SIZE]), ROUNDS[impl])
