"""Benchmark conventions: every benchmark sets ``benchmark.group`` to "<op>: <case>"
(shared by all implementations of that case) and ``benchmark.extra_info["impl"]`` to
"maskx" or the baseline's name; ``python -m benchmarks`` prints the medians and the
maskx speed-up over each baseline per group."""
import torch


def run(benchmark, group, impl, fn, rounds):
    """Times fn() (one warm-up round, then `rounds` rounds of one call each)."""
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


def cuda_synchronized(fn):
    """fn followed by a device synchronisation, so host timers measure the GPU work."""

    def timed():
        out = fn()
        torch.cuda.synchronize()
        return out

    return timed
