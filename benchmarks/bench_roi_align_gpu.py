"""ROIAlign on a GPU: maskx's CUDA kernel vs torchvision's CUDA kernel vs maskx's Triton
kernel, on the standard workload (a P2-sized map 2x256x200x272 at scale 1/4, 1000 RoIs,
7x7 bins, sampling ratio 2). Skipped without a CUDA device."""
import pytest
import torch
import torchvision

import maskx_kernels

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SCALE = 0.25
OUTPUT = (7, 7)
RATIO = 2


def workload(memory_format=torch.contiguous_format, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 256, 200, 272, generator=g).to("cuda", dtype).contiguous(memory_format=memory_format)
    height, width = 200 / SCALE, 272 / SCALE
    size = torch.rand(1000, 2, generator=g) * 380 + 16
    corner = torch.rand(1000, 2, generator=g) * torch.tensor([width, height])
    index = torch.randint(0, 2, (1000, 1), generator=g).float()
    rois = torch.cat([index, corner, corner + size], dim=1).to("cuda", dtype)
    return x, rois


def triton_roi_align(x, rois):
    from maskx_kernels.triton.roi_align import roi_align

    return roi_align(x, rois, SCALE, OUTPUT[0], OUTPUT[1], RATIO, False)


IMPLS = {
    "maskx": lambda x, rois: maskx_kernels.roi_align(x, rois, OUTPUT, SCALE, RATIO, False),
    "torchvision": lambda x, rois: torchvision.ops.roi_align(x, rois, OUTPUT, SCALE, RATIO, False),
    "triton": triton_roi_align,
}


def timed(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize(
    "layout,memory_format", [("NCHW", torch.contiguous_format), ("NHWC", torch.channels_last)], ids=["nchw", "nhwc"]
)
def test_forward(benchmark, impl, layout, memory_format):
    x, rois = workload(memory_format)
    benchmark.group = f"roi_align gpu: forward 2x256x200x272 {layout}, 1000 RoIs, 7x7, sr 2"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(timed(lambda: IMPLS[impl](x, rois)), rounds=20, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_backward(benchmark, impl, deterministic):
    x, rois = workload()
    x.requires_grad_()
    mode = "deterministic" if deterministic else "atomic"
    benchmark.group = f"roi_align gpu: backward ({mode}) 2x256x200x272, 1000 RoIs, 7x7, sr 2"
    benchmark.extra_info["impl"] = impl
    previous = torch.are_deterministic_algorithms_enabled()
    # torchvision switches to its pure-PyTorch implementation in deterministic mode.
    torch.use_deterministic_algorithms(deterministic)
    try:
        out = IMPLS[impl](x, rois)
        grad = torch.randn_like(out)
        benchmark.pedantic(
            timed(lambda: torch.autograd.grad(out, x, grad, retain_graph=True)), rounds=10, iterations=1,
            warmup_rounds=1,
        )
    finally:
        torch.use_deterministic_algorithms(previous)
