"""Argument checks shared by the Python faces of the ops, worded as the C++ ones
(csrc/ops/checks.h): "<op>: <name> must be ..., got ...".

Where each kind of check lives: the C++ entry points check tensors (shapes, dtypes,
devices) and scalar arguments on every eager call; Python checks the same for the fake
kernels (torch.compile never reaches C++) and the Triton launchers, and checks tensor
values on a GPU before the call (should_check_values); CPU kernels check values as they
read them.
"""
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check(condition: bool, message: Callable[[], str]) -> None:
    """Raises ValueError(message()) unless condition holds. The message is built only on
    failure (as with torch._check): formatting shapes, dtypes and devices for every
    passing check took tens of microseconds per call."""
    if not condition:
        raise ValueError(message())


def check_same_device(op: str, **tensors: Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items()}
    check(
        len(set(devices.values())) <= 1,
        lambda: f"{op}: tensors must share one device, got " + ", ".join(f"{n} on {d}" for n, d in devices.items()),
    )


def check_float(op: str, name: str, t: Tensor) -> None:
    check(t.dtype in FLOAT_DTYPES, lambda: f"{op}: {name} must be a floating tensor, got {t.dtype}")


def check_same_dtype(op: str, name: str, t: Tensor, like_name: str, like: Tensor) -> None:
    check(t.dtype == like.dtype, lambda: f"{op}: {name} must have the dtype of {like_name} ({like.dtype}), got {t.dtype}")


def check_like(op: str, name: str, t: Tensor, like_name: str, like: Tensor) -> None:
    """`t` has the dtype and device of `like`."""
    check_same_dtype(op, name, t, like_name, like)
    check_same_device(op, **{name: t, like_name: like})


def should_check_values(*tensors: Tensor) -> bool:
    """Data-dependent checks read tensor values: on the CPU the kernels do, on other
    devices the Python faces, eagerly (one synchronisation); never while tracing, and
    never on meta tensors, which have no values."""
    return not torch.compiler.is_compiling() and any(t.device.type not in ("cpu", "meta") for t in tensors)


def pair(value, name: str) -> Sequence[int]:
    if isinstance(value, int):
        return (value, value)
    check(len(value) == 2, lambda: f"{name} must be an int or a pair of ints, got {value!r}")
    return (int(value[0]), int(value[1]))
