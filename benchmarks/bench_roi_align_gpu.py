"""roi_align and MultiScaleRoIAlign on a GPU: maskx's CUDA kernel vs torchvision's CUDA
kernel (and maskx's Triton kernel for roi_align) on the workloads of bench_roi_align.py
moved to the device: input 2x256x200x272 at scale 1/4 with 1000 RoIs, 7x7 bins,
sampling ratio 2, NCHW and channels-last; MultiScaleRoIAlign over P2-P5 of one 800x1088
image. Backward in the atomic (default) and deterministic modes. Skipped without a CUDA
device."""
import pytest
import torch
import torchvision

import maskx_kernels as mk
from benchmarks.timing import cuda_synchronized, run
from benchmarks.workloads import IMAGE_SIZE, detector_boxes, detector_rois, feature_map, fpn_pyramid

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROUNDS = 20


def triton_roi_align(x, rois, output_size, scale, ratio, aligned):
    from maskx_kernels.triton.roi_align import roi_align

    return roi_align(x, rois, scale, output_size, output_size, ratio, aligned)


IMPLS = {"maskx": mk.roi_align, "torchvision": torchvision.ops.roi_align, "maskx-triton": triton_roi_align}


def _inputs(channels_last):
    x = feature_map(2, 256, 200, 272, channels_last=channels_last).cuda()
    return x, detector_rois(1000, 2).cuda()


@pytest.fixture(params=[False, True], ids=["atomic", "deterministic"])
def deterministic(request):
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(request.param)
    yield request.param
    torch.use_deterministic_algorithms(previous)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_roi_align_forward(benchmark, impl, layout):
    x, rois = _inputs(layout == "channels_last")
    fn = IMPLS[impl]
    group = f"roi_align gpu forward: 7x7 sr=2 {layout}"
    run(benchmark, group, impl, cuda_synchronized(lambda: fn(x, rois, 7, 0.25, 2, True)), ROUNDS)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_roi_align_forward_backward(benchmark, impl, deterministic):
    # torchvision falls back to its pure-PyTorch implementation in deterministic mode.
    x, rois = _inputs(False)
    x.requires_grad_()
    grad = torch.randn(1000, 256, 7, 7, device="cuda")
    fn = IMPLS[impl]

    def step():
        x.grad = None
        fn(x, rois, 7, 0.25, 2, True).backward(grad)

    mode = "deterministic" if deterministic else "atomic"
    run(benchmark, f"roi_align gpu forward+backward ({mode}): 7x7 sr=2 nchw", impl, cuda_synchronized(step), ROUNDS)


POOLERS = {"maskx": mk.MultiScaleRoIAlign, "torchvision": torchvision.ops.MultiScaleRoIAlign}


@pytest.mark.parametrize("impl", list(POOLERS))
@pytest.mark.parametrize("backward", [False, True])
def test_multi_scale_roi_align(benchmark, impl, backward):
    names = ["p2", "p3", "p4", "p5"]
    feats = {name: f.cuda().requires_grad_(backward) for name, f in zip(names, fpn_pyramid(batch=1))}
    boxes = [detector_boxes(1000).cuda()]
    pooler = POOLERS[impl](names, 7, 2)
    grad = torch.randn(1000, 256, 7, 7, device="cuda")

    def step():
        out = pooler(feats, boxes, [IMAGE_SIZE])
        if backward:
            for f in feats.values():
                f.grad = None
            out.backward(grad)
        return out

    kind = "forward+backward" if backward else "forward"
    run(benchmark, f"MultiScaleRoIAlign gpu {kind}: P2-P5 7x7", impl, cuda_synchronized(step), ROUNDS)
