"""Per-class mask logits and loss the way torchvision's MaskRCNNPredictor computes them:
a 1x1 conv with every class's weights, then the channel of each RoI's class."""

import torch
import torch.nn.functional as F
from torch import Tensor


def per_class_mask_logits(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    sigmoid: bool = False,
) -> Tensor:
    all_classes = F.conv2d(features, class_weights[:, :, None, None], class_bias)  # [R, C, H, W]
    logits = all_classes[torch.arange(features.shape[0], device=features.device), classes]
    if agnostic_logits is not None:
        logits = logits + agnostic_logits
    return logits.sigmoid() if sigmoid else logits


def per_class_mask_loss(
    features: Tensor,
    class_weights: Tensor,
    classes: Tensor,
    targets: Tensor,
    class_bias: Tensor | None = None,
    agnostic_logits: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    logits = per_class_mask_logits(features, class_weights, classes, class_bias, agnostic_logits)
    if valid is None:
        valid = torch.ones(features.shape[0], dtype=torch.bool, device=features.device)
    if not bool(valid.any()):
        return logits.sum() * 0
    return F.binary_cross_entropy_with_logits(logits[valid], targets[valid])
