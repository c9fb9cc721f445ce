"""Batching for detection: images differ in size, so a batch stays a list."""

from __future__ import annotations

import torch


def collate_detection(
    batch: list[tuple[torch.Tensor, dict]],
) -> tuple[list[torch.Tensor], list[dict]]:
    """``[(image, target), ...]`` -> ``([image, ...], [target, ...])``.

    torchvision's detection models take a list of images of any sizes and pad them into
    one tensor themselves, after their own normalisation and resizing.
    """
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets
