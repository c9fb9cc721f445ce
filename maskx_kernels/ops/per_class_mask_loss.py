"""maskx_kernels.per_class_mask_loss: Mask R-CNN's mask loss on each RoI's own class.

Mean per-pixel binary cross-entropy with logits over the RoIs marked valid (in Mask^X
R-CNN, the RoIs whose class has mask annotations), fused with the logits themselves so
that no [R, H, W] logits tensor is formed and invalid RoIs cost nothing. Native kernels:
csrc/ops/cpu/per_class_mask_loss_kernel.cpp and csrc/ops/cuda/per_class_mask_loss_kernel.cu,
registered as torch.ops.maskx.per_class_mask_loss (schema in csrc/ops/per_class_mask_loss.cpp).
Autograd: csrc/ops/autograd/per_class_mask_loss_autograd.cpp.
"""

import torch
from torch import Tensor

from maskx_kernels._validation import check, check_like, check_same_device, should_check_values
from maskx_kernels.ops.per_class_mask_logits import check_class_values, check_mask_logits_args


def check_mask_loss_args(features: Tensor, targets: Tensor, valid: Tensor | None) -> None:
    op = "per_class_mask_loss"
    r, _, h, w = features.shape
    check(
        tuple(targets.shape) == (r, h, w),
        lambda: f"{op}: targets must be a Tensor[R, H, W] matching features {list(features.shape)}, "
        f"got shape {list(targets.shape)}",
    )
    check_like(op, "targets", targets, "features", features)
    if valid is not None:
        check(
            valid.dim() == 1 and valid.shape[0] == r,
            lambda: f"{op}: valid must be a Tensor[R] with R = {r}, got shape {list(valid.shape)}",
        )
        check(valid.dtype == torch.bool, lambda: f"{op}: valid must be bool, got {valid.dtype}")
        check_same_device(op, valid=valid, features=features)


def check_target_values(targets: Tensor) -> None:
    """Targets must lie in [0, 1] (one device sync)."""
    if targets.numel() > 0 and not bool(((targets >= 0) & (targets <= 1)).all()):
        raise ValueError("per_class_mask_loss: targets must lie in [0, 1]")


@torch.library.register_fake("maskx::per_class_mask_loss")
def _per_class_mask_loss_fake(features, class_weights, classes, targets, class_bias, agnostic_logits, valid):
    check_mask_logits_args("per_class_mask_loss", features, class_weights, classes, class_bias, agnostic_logits)
    check_mask_loss_args(features, targets, valid)
    return features.new_empty(())


@torch.library.register_fake("maskx::_per_class_mask_loss_backward")
def _per_class_mask_loss_backward_fake(grad, features, class_weights, classes, targets, class_bias, agnostic_logits, valid):
    return (
        torch.empty_like(features, memory_format=torch.contiguous_format),
        torch.empty_like(class_weights, memory_format=torch.contiguous_format),
        class_weights.new_empty((class_weights.shape[0],)),
        torch.empty_like(targets, memory_format=torch.contiguous_format),
    )


def per_class_mask_loss(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    targets: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """Mean binary cross-entropy with logits of :func:`per_class_mask_logits` against
    ``targets``, over the pixels of the RoIs where ``valid`` is true.

    Args:
        features, class_weights, classes, class_bias, agnostic_logits: as in
            :func:`per_class_mask_logits`.
        targets: Tensor[R, H, W] in [0, 1], the features' dtype.
        valid: optional bool Tensor[R]; RoIs where it is false are left out of the loss
            (their logits are never computed). Default: every RoI.

    Returns:
        A 0-d tensor. With no valid RoI (or R = 0) it is zero, and still backpropagates
        (zero gradients).
    """
    if should_check_values(features):
        # As in per_class_mask_logits: the arguments are checked before reading values.
        op = "per_class_mask_loss"
        check_mask_logits_args(op, features, class_weights, classes, class_bias, agnostic_logits)
        check_mask_loss_args(features, targets, valid)
        check_class_values(op, classes, class_weights.shape[0])
        check_target_values(targets)
    return torch.ops.maskx.per_class_mask_loss(features, class_weights, classes, targets, class_bias, agnostic_logits, valid)
