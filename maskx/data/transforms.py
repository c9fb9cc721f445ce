"""Training transforms on ``(image, target)`` pairs that keep boxes and masks consistent.

Masks of instances without mask supervision (``has_mask`` False) are all zero and stay
so: they are never resized or flipped, which keeps set-B instances free of mask work.
Random choices draw from torch's global generator, which DataLoader seeds per worker from
the main process, so ``torch.manual_seed`` makes a run repeatable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class Compose:
    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        for transform in self.transforms:
            image, target = transform(image, target)
        return image, target


class Resize:
    """Scale so the shorter side is ``min_size`` unless the longer would pass ``max_size``.

    With several ``min_size`` values one is drawn per image (multi-scale training). The
    rule is torchvision's GeneralizedRCNNTransform rule, with sizes rounded to pixels.
    """

    def __init__(self, min_size: int | Sequence[int], max_size: int):
        self.min_sizes = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        if not self.min_sizes or min(self.min_sizes) <= 0 or max_size <= 0:
            raise ValueError("sizes must be positive")
        self.max_size = max_size

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        height, width = image.shape[-2:]
        choice = torch.randint(len(self.min_sizes), ()).item() if len(self.min_sizes) > 1 else 0
        scale = min(self.min_sizes[choice] / min(height, width), self.max_size / max(height, width))
        new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
        image = F.interpolate(image[None], size=(new_height, new_width), mode="bilinear",
                              align_corners=False)[0]
        sx, sy = new_width / width, new_height / height
        target = dict(target)
        target["boxes"] = target["boxes"] * torch.tensor([sx, sy, sx, sy])
        target["area"] = target["area"] * (sx * sy)
        masks = target["masks"]
        resized = masks.new_zeros((masks.shape[0], new_height, new_width))
        has_mask = target["has_mask"]
        if has_mask.any():
            resized[has_mask] = F.interpolate(masks[has_mask][None], size=(new_height, new_width),
                                              mode="nearest-exact")[0]
        target["masks"] = resized
        return image, target


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        if torch.rand(()).item() >= self.p:
            return image, target
        width = image.shape[-1]
        target = dict(target)
        boxes = target["boxes"].clone()
        boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
        target["boxes"] = boxes
        if target["has_mask"].any():
            target["masks"] = target["masks"].flip(-1)
        return image.flip(-1), target


def train_transforms(min_size: int | Sequence[int], max_size: int,
                     flip_probability: float = 0.5) -> Compose:
    """The standard Mask R-CNN training augmentation: resize, then a random flip."""
    return Compose([Resize(min_size, max_size), RandomHorizontalFlip(flip_probability)])
