"""The CPU output cache (csrc/ops/cpu/output_cache.h).

The CPU kernels take their big outputs (RoIAlign's pooled features and input gradients,
the mask kernels' feature gradients; 4 MiB and up) from a cache of blocks that earlier
outputs freed, instead of fresh memory whose page faults and zeroing would cost a large
part of the kernel's time. Like PyTorch's CUDA caching allocator, the cache keeps freed
blocks mapped: at most ``cpu_cache_limit()`` bytes, 512 MiB unless the environment
variable ``MASKX_CPU_CACHE_MB`` says otherwise (``0`` turns it off).
"""
import operator

from maskx_kernels import _C


def set_cpu_cache_limit(limit_bytes: int) -> int:
    """Keeps at most ``limit_bytes`` of freed outputs (0: none) and returns the previous
    limit. Blocks over the new limit are released at once, oldest first."""
    return _C.set_cpu_cache_limit(operator.index(limit_bytes))


def cpu_cache_limit() -> int:
    """The most bytes of freed outputs the cache keeps."""
    return _C.cpu_cache_limit()


def cpu_cache_bytes() -> int:
    """Bytes of freed outputs the cache holds now, waiting to be reused."""
    return _C.cpu_cache_bytes()


def empty_cpu_cache() -> None:
    """Returns every cached block to the operating system (tensors in use are untouched)."""
    _C.empty_cpu_cache()
