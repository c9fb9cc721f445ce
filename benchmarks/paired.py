"""python -m benchmarks.paired [--pairs N] [--device cpu|cuda]: maskx against its
plain-PyTorch baseline with alternating calls in one process, for the comparisons whose
targets sit within the run-to-run noise of separately timed blocks (mask logits vs
gather+bmm, transfer_mlp vs the eager chain). Each pair times one maskx call and one
baseline call back to back, so both see the same machine load; the report is the median
over pairs of baseline time / maskx time, with its quartiles.

Workloads and inputs are those of bench_mask_logits.py and bench_transfer_mlp.py. With
--device cuda the inputs live on the GPU and every call ends with a device
synchronisation, as in bench_*_gpu.py."""
import argparse
import statistics
import sys
import time

import torch

from benchmarks import bench_mask_logits, bench_transfer_mlp
from benchmarks.timing import cuda_synchronized


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired_speedups(maskx, baseline, pairs, warmup=2):
    """Per-pair speed-ups (baseline time / maskx time), the call order alternating
    between pairs so neither implementation always runs first."""
    for _ in range(warmup):
        maskx()
        baseline()
    speedups = []
    for i in range(pairs):
        if i % 2 == 0:
            t_maskx, t_base = _seconds(maskx), _seconds(baseline)
        else:
            t_base, t_maskx = _seconds(baseline), _seconds(maskx)
        speedups.append(t_base / t_maskx)
    return speedups


def mask_logits_cases(device):
    for rois, classes in bench_mask_logits.CASES:
        args = [t.to(device) for t in bench_mask_logits.make_inputs(rois, classes, requires_grad=False)]
        yield (
            f"mask_logits forward: {rois} RoIs, {classes} classes, vs gather_bmm",
            lambda args=args: bench_mask_logits.IMPLS["maskx"](*args),
            lambda args=args: bench_mask_logits.IMPLS["gather_bmm"](*args),
        )


def transfer_mlp_cases(device):
    for classes in (81, 3002):
        x, weights, biases = bench_transfer_mlp.make_inputs(classes)
        x = x.to(device)
        weights, biases = ([t.detach().to(device).requires_grad_() for t in ts] for ts in (weights, biases))
        grad = torch.randn(classes, bench_transfer_mlp.WIDTHS[-1], device=device)

        def forward(fn, x=x, weights=weights, biases=biases):
            with torch.no_grad():
                fn(x, weights, biases, 0.1)

        def forward_backward(fn, x=x, weights=weights, biases=biases, grad=grad):
            for p in weights + biases:
                p.grad = None
            fn(x, weights, biases, 0.1).backward(grad)

        maskx, eager = bench_transfer_mlp.IMPLS["maskx"], bench_transfer_mlp.IMPLS["eager"]
        yield (f"transfer_mlp forward: {classes} classes, vs eager", lambda: forward(maskx), lambda: forward(eager))
        yield (
            f"transfer_mlp forward+backward: {classes} classes, vs eager",
            lambda: forward_backward(maskx),
            lambda: forward_backward(eager),
        )


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=30, help="timed pairs per case (default 30)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the inputs live (default cpu)")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    timed = cuda_synchronized if args.device == "cuda" else (lambda fn: fn)
    rows = []
    for cases in (mask_logits_cases(args.device), transfer_mlp_cases(args.device)):
        for name, maskx, baseline in cases:
            s = sorted(paired_speedups(timed(maskx), timed(baseline), args.pairs))
            q1, median, q3 = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else (s[0], s[0], s[0])
            rows.append((name, f"{median:.2f}x", f"{q1:.2f}x to {q3:.2f}x"))
    widths = [max(len(r[i]) for r in rows + [("case", "maskx speed-up", "quartiles")]) for i in range(3)]
    header = ("case", "maskx speed-up", "quartiles")
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"paired, {args.pairs} pairs per case, {where}")
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
