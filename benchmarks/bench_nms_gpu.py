"""NMS family on a GPU: maskx's CUDA kernels vs torchvision's CUDA kernels, on the
workloads of bench_nms.py moved to the device. Skipped without a CUDA device."""
import pytest
import torch
import torchvision

import maskx_kernels
from benchmarks.bench_nms import IOU, detections, detector_boxes, torchvision_postprocess
from benchmarks.timing import cuda_synchronized, run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROUNDS = 20


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
@pytest.mark.parametrize("n", [1000, 10_000, 50_000])
def test_nms(benchmark, impl, n):
    boxes, scores = (t.cuda() for t in detector_boxes(n, seed=n))
    fn = maskx_kernels.nms if impl == "maskx" else torchvision.ops.nms
    run(benchmark, f"nms gpu: {n} boxes", impl, cuda_synchronized(lambda: fn(boxes, scores, IOU)), ROUNDS)


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
@pytest.mark.parametrize("num_classes", [80, 3000])
def test_batched_nms(benchmark, impl, num_classes):
    boxes, scores = (t.cuda() for t in detector_boxes(10_000, seed=num_classes))
    idxs = torch.randint(0, num_classes, (10_000,), generator=torch.Generator().manual_seed(num_classes)).cuda()
    fn = maskx_kernels.batched_nms if impl == "maskx" else torchvision.ops.batched_nms
    group = f"batched_nms gpu: 10000 boxes, {num_classes} classes"
    run(benchmark, group, impl, cuda_synchronized(lambda: fn(boxes, scores, idxs, IOU)), ROUNDS)


@pytest.mark.parametrize("impl", ["maskx", "torchvision"])
@pytest.mark.parametrize("num_classes", [81, 3000])
def test_multiclass_nms(benchmark, impl, num_classes):
    boxes, scores = (t.cuda() for t in detections(1000, num_classes, seed=num_classes))
    fn = maskx_kernels.multiclass_nms if impl == "maskx" else torchvision_postprocess
    group = f"multiclass_nms gpu: 1000 RoIs x {num_classes} classes"
    run(benchmark, group, impl, cuda_synchronized(lambda: fn(boxes, scores, 0.05, IOU, 100)), ROUNDS)
