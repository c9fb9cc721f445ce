"""Standard inputs shared by the benchmarks (deterministic for a seed)."""

import torch
from torch import Tensor

IMAGE_SIZE = (800, 1088)  # (height, width) of the padded input batch


def detector_boxes(num: int, image_size: tuple[int, int] = IMAGE_SIZE, seed: int = 0, dtype=torch.float32) -> Tensor:
    """Proposal-like boxes [num, 4] inside the image: log-uniform sides from 16 to 512
    pixels (every FPN level gets RoIs), uniform centres."""
    g = torch.Generator().manual_seed(seed)
    height, width = image_size
    side = torch.exp(torch.empty(num, 2).uniform_(torch.log(torch.tensor(16.0)), torch.log(torch.tensor(512.0)), generator=g))
    centre = torch.rand(num, 2, generator=g) * torch.tensor([width, height])
    lo = (centre - side / 2).clamp(min=0)
    hi = torch.minimum(centre + side / 2, torch.tensor([width - 1.0, height - 1.0]))
    return torch.cat([lo, hi], dim=1).to(dtype)


def detector_rois(num: int, batch: int, image_size: tuple[int, int] = IMAGE_SIZE, seed: int = 0, dtype=torch.float32) -> Tensor:
    """[num, 5] rois (batch index first), images in turn."""
    boxes = detector_boxes(num, image_size, seed, dtype)
    index = (torch.arange(num) % batch).to(dtype)[:, None]
    return torch.cat([index, boxes], dim=1)


def feature_map(batch: int, channels: int, height: int, width: int, seed: int = 0, channels_last: bool = False) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=g)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def fpn_pyramid(batch: int = 2, channels: int = 256, image_size: tuple[int, int] = IMAGE_SIZE, seed: int = 0) -> list[Tensor]:
    """P2-P5 features of an image of image_size (strides 4, 8, 16, 32)."""
    height, width = image_size
    return [feature_map(batch, channels, height // s, width // s, seed + i) for i, s in enumerate((4, 8, 16, 32))]
