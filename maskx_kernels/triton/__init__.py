"""Triton implementations of maskx's kernels, one op per module.

They run on any GPU Triton supports and on the CPU through the Triton interpreter
(set TRITON_INTERPRET=1 before importing triton). Import a module explicitly, e.g.
``from maskx_kernels.triton.roi_align import roi_align``.

Every module ``maskx_kernels.triton.<op>`` has the same shape, and no name carries a
``_triton`` suffix (the module path says Triton):

- ``<op>_forward(...)`` and ``<op>_backward(...)``: the launchers. They check their
  arguments, run the kernels on the inputs' device and return what the native
  ``torch.ops.maskx.<op>`` / ``torch.ops.maskx._<op>_backward`` return; they record no
  autograd. nms and paste_masks have no gradient, hence no ``<op>_backward``.
- ``<op>(...)``: where the native op is differentiable (roi_align, per_class_mask_logits,
  per_class_mask_loss, transfer_mlp), the differentiable entry. It checks its arguments
  and runs the custom op ``torch.ops.maskx_triton.<op>``, whose autograd calls
  ``torch.ops.maskx_triton._<op>_backward`` (torch.library.custom_op with
  register_autograd and a fake kernel, so torch.compile can trace it).
- Kernels are named ``_<op>_forward[_<stage>]_kernel`` and ``_<op>_backward[_<stage>]_kernel``;
  helper ``@triton.jit`` functions are named for what they compute.
- The accumulator dtype and the device context come from ``_utils``
  (:func:`~maskx_kernels.triton._utils.accumulator_dtype`,
  :func:`~maskx_kernels.triton._utils.tl_accumulator_dtype`,
  :func:`~maskx_kernels.triton._utils.on_device`).
"""
