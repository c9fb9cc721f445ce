"""Triton implementations of maskx's kernels, one op per module.

They run on any GPU Triton supports and on the CPU through the Triton interpreter
(set TRITON_INTERPRET=1 before importing triton). Import a module explicitly, e.g.
``from maskx_kernels.triton.roi_align import roi_align``.
"""
