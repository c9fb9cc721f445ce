"""What every launcher in maskx_kernels.triton needs: the dtype kernels accumulate in and
the device to launch on."""
import contextlib

import torch
import triton.language as tl
from torch import Tensor


def accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype kernels accumulate in for inputs of ``dtype`` (and that launchers give
    their partial-sum buffers): float64 for float64, float32 for float32, float16 and
    bfloat16, whose own sums would lose the low bits the native kernels keep."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tl_accumulator_dtype(dtype: torch.dtype) -> tl.dtype:
    """:func:`accumulator_dtype` as the Triton dtype that the kernels' ``ACC`` parameter takes."""
    return tl.float64 if accumulator_dtype(dtype) == torch.float64 else tl.float32


def on_device(t: Tensor) -> contextlib.AbstractContextManager:
    """Makes ``t``'s GPU the current device while launchers run: Triton launches on the
    current device, so kernels given a tensor on another GPU would read the wrong
    memory. A no-op for CPU tensors (the Triton interpreter)."""
    if t.device.type == "cuda":
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()
