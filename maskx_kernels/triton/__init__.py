"""Triton kernels of the maskx ops, each with a plain launcher (run them on the CPU with
TRITON_INTERPRET=1, set before triton is imported)."""
from maskx_kernels.triton.nms import nms

__all__ = ["nms"]
