"""python -m benchmarks.model_profile [--workload small|coco] [--ops maskx|torchvision]: where
a Mask^X R-CNN training step and inference pass spend their time.

Runs the workloads of bench_model.py under torch.profiler and sums the operators' own CPU
time (self time) into categories: the maskx kernels, torchvision's RoIAlign and NMS,
convolutions (backbone, FPN, RPN head, mask head), fully connected layers (box head, MLP
branch, T), normalisation, and the rest. Forward and backward operators are counted
together. The table says what the kernels leave to cut next.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections import defaultdict

import torch

from benchmarks.bench_model import WORKLOADS, _inference, _train_step
from maskx.model import MaskXRCNN

CATEGORIES = (
    ("maskx kernels", re.compile(r"^maskx::")),
    ("torchvision roi_align", re.compile(r"^torchvision::(_)?roi_align")),
    ("torchvision nms", re.compile(r"^torchvision::nms")),
    ("convolution", re.compile(r"conv|mkldnn_convolution|slow_conv")),
    ("linear (FC layers)", re.compile(r"^aten::(addmm|mm|bmm|matmul|linear)$")),
    ("normalisation", re.compile(r"group_norm|batch_norm|native_norm")),
    ("interpolation (resizing, pasting)", re.compile(r"upsample|interpolate|grid_sampler")),
    ("elementwise and reductions", re.compile(r"^aten::(add|mul|sub|div|relu|leaky_relu|threshold|sigmoid|exp|log|"
                                              r"sum|mean|clamp|where|fill_|zero_|copy_|binary_cross_entropy)")),
    ("indexing and sorting", re.compile(r"^aten::(index|gather|scatter|sort|topk|nonzero|masked|cat|stack)")),
)


def categorise(name: str) -> str:
    for category, pattern in CATEGORIES:
        if pattern.search(name):
            return category
    return "other"


def profile(run) -> tuple[float, dict[str, float]]:
    run()  # warm-up
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        totals[categorise(event.key)] += event.self_cpu_time_total / 1e6
    return sum(totals.values()), dict(totals)


def main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_profile")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="small")
    parser.add_argument("--ops", choices=("maskx", "torchvision"), default="maskx")
    args = parser.parse_args(argv)
    config, images, targets = WORKLOADS[args.workload]()
    config = dataclasses.replace(config, ops=args.ops, box=dataclasses.replace(config.box, score_thresh=0.0))
    torch.manual_seed(0)
    model = MaskXRCNN(config)
    for mode, run in (("train step", lambda: _train_step(model, images, targets)),
                      ("inference", lambda: _inference(model, images))):
        total, parts = profile(run)
        print(f"{args.workload} {mode}, ops {args.ops}: {total:.3f} s of operator self time")
        for category, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"  {category:<36} {seconds:8.3f} s  {100 * seconds / total:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
