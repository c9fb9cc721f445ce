"""maskx_kernels.per_class_mask_logits: Mask R-CNN mask logits of each RoI's own class.

torchvision's MaskRCNNPredictor runs a 1x1 conv with every class's weights and then
picks one channel per RoI: C times the needed work. Here only the picked class's weight
row is applied, with the class bias, the class-agnostic logits and an optional sigmoid
in the same pass. Native kernels: csrc/ops/cpu/per_class_mask_logits_kernel.cpp and
csrc/ops/cuda/per_class_mask_logits_kernel.cu, registered as
torch.ops.maskx.per_class_mask_logits (schema in csrc/ops/per_class_mask_logits.cpp).
Autograd: csrc/ops/autograd/per_class_mask_logits_autograd.cpp.
"""

import torch
from torch import Tensor

from maskx_kernels._validation import check, check_float, check_like, check_same_device, should_check_values


def check_mask_logits_args(
    op: str,
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    class_bias: Tensor | None,
    agnostic_logits: Tensor | None,
) -> None:
    """Shapes, dtypes and devices of the inputs shared by the logits and loss ops."""
    check(
        features.dim() == 4,
        lambda: f"{op}: features must be a Tensor[R, K, H, W], got shape {list(features.shape)}",
    )
    check_float(op, "features", features)
    r, k, h, w = features.shape
    check(
        class_weights.dim() == 2 and class_weights.shape[1] == k,
        lambda: f"{op}: class_weights must be a Tensor[C, K] with K = {k} (the features' channels), "
        f"got shape {list(class_weights.shape)}",
    )
    check_like(op, "class_weights", class_weights, "features", features)
    check(
        classes.dim() == 1 and classes.shape[0] == r,
        lambda: f"{op}: classes must be a Tensor[R] with R = {r}, got shape {list(classes.shape)}",
    )
    check(classes.dtype == torch.int64, lambda: f"{op}: classes must be int64, got {classes.dtype}")
    check_same_device(op, classes=classes, features=features)
    if class_bias is not None:
        check(
            class_bias.dim() == 1 and class_bias.shape[0] == class_weights.shape[0],
            lambda: f"{op}: class_bias must be a Tensor[C] with C = {class_weights.shape[0]}, got shape {list(class_bias.shape)}",
        )
        check_like(op, "class_bias", class_bias, "features", features)
    if agnostic_logits is not None:
        check(
            tuple(agnostic_logits.shape) == (r, h, w),
            lambda: f"{op}: agnostic_logits must be a Tensor[R, H, W] matching features {list(features.shape)}, "
            f"got shape {list(agnostic_logits.shape)}",
        )
        check_like(op, "agnostic_logits", agnostic_logits, "features", features)


def check_class_values(op: str, classes: Tensor, num_classes: int) -> None:
    """Raises IndexError on a class index outside [0, num_classes) (one device sync)."""
    if classes.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(classes)).tolist()
    if low < 0 or high >= num_classes:
        r = int(((classes < 0) | (classes >= num_classes)).nonzero()[0, 0])
        raise IndexError(f"{op}: RoI {r} has class {int(classes[r])}, expected one in [0, {num_classes})")


@torch.library.register_fake("maskx::per_class_mask_logits")
def _per_class_mask_logits_fake(features, class_weights, classes, class_bias, agnostic_logits, sigmoid):
    check_mask_logits_args("per_class_mask_logits", features, class_weights, classes, class_bias, agnostic_logits)
    return features.new_empty((features.shape[0], features.shape[2], features.shape[3]))


@torch.library.register_fake("maskx::_per_class_mask_logits_backward")
def _per_class_mask_logits_backward_fake(grad, features, class_weights, classes):
    return (
        torch.empty_like(features, memory_format=torch.contiguous_format),
        torch.empty_like(class_weights, memory_format=torch.contiguous_format),
        class_weights.new_empty((class_weights.shape[0],)),
    )


def per_class_mask_logits(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    sigmoid: bool = False,
) -> Tensor:
    """Mask logits of every RoI for its own class.

    ``out[r] = sum_k class_weights[classes[r], k] * features[r, k] + class_bias[classes[r]]
    + agnostic_logits[r]``: the 1x1 conv of Mask R-CNN's mask predictor, evaluated for one
    class per RoI.

    Args:
        features: Tensor[R, K, H, W], the mask head's output per RoI.
        class_weights: Tensor[C, K], the per-class 1x1 conv weights (e.g. the output of
            :func:`transfer_mlp`).
        classes: int64 Tensor[R], each RoI's class in [0, C).
        class_bias: optional Tensor[C].
        agnostic_logits: optional Tensor[R, H, W], the class-agnostic MLP branch's logits.
        sigmoid: return probabilities instead of logits (inference), in the same pass.

    Returns:
        Tensor[R, H, W] in the features' dtype. Differentiable with respect to features,
        class_weights, class_bias and agnostic_logits.
    """
    if should_check_values(features):
        # The values are read on the device, so the arguments are checked here first; on
        # the CPU the native op checks both.
        op = "per_class_mask_logits"
        check_mask_logits_args(op, features, class_weights, classes, class_bias, agnostic_logits)
        check_class_values(op, classes, class_weights.shape[0])
    return torch.ops.maskx.per_class_mask_logits(features, class_weights, classes, class_bias, agnostic_logits, sigmoid)
