"""maskx_kernels.MultiScaleRoIAlign: torchvision's FPN pooler in one kernel call.

torchvision pools each pyramid level separately after splitting the RoIs by level on
the host. Here the level of every RoI is computed on the device and one call of
torch.ops.maskx.multi_scale_roi_align (schema in csrc/ops/multi_scale_roi_align.cpp,
kernels beside roi_align's) pools all levels, with no host synchronisation.
Autograd: csrc/ops/autograd/roi_align_autograd.cpp.
"""
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from maskx_kernels._validation import check, check_float, check_same_device, pair
from maskx_kernels.ops.roi_align import boxes_to_rois, check_rois


def check_multi_scale_args(
    features: Sequence[Tensor], rois: Tensor, levels: Tensor, spatial_scales: Sequence[float], pooled_h: int, pooled_w: int
) -> None:
    op = "multi_scale_roi_align"
    check(len(features) > 0, lambda: f"{op}: needs at least one feature level")
    check(
        len(spatial_scales) == len(features),
        lambda: f"{op}: {len(features)} levels but {len(spatial_scales)} scales",
    )
    first = features[0]
    for i, f in enumerate(features):
        check(f.dim() == 4, lambda: f"{op}: level {i} must be a Tensor[N, C, H, W], got shape {list(f.shape)}")
        check_float(op, f"level {i}", f)
        check(
            f.shape[:2] == first.shape[:2] and f.dtype == first.dtype and f.device == first.device,
            lambda: f"{op}: level {i} ({list(f.shape)}, {f.dtype}, {f.device}) must share batch size, channels, dtype "
            f"and device with level 0 ({list(first.shape)}, {first.dtype}, {first.device})",
        )
    check_rois(op, rois, "features", first)
    check(
        levels.dim() == 1 and levels.shape[0] == rois.shape[0],
        lambda: f"{op}: levels must be a Tensor[K] matching rois, got shape {list(levels.shape)}",
    )
    check(levels.dtype == torch.int64, lambda: f"{op}: levels must be int64, got {levels.dtype}")
    check_same_device(op, levels=levels, rois=rois)
    check(pooled_h > 0 and pooled_w > 0, lambda: f"{op}: output size must be positive, got ({pooled_h}, {pooled_w})")
    check(all(0 < s < math.inf for s in spatial_scales), lambda: f"{op}: spatial scales must be positive and finite")


@torch.library.register_fake("maskx::multi_scale_roi_align")
def _multi_scale_roi_align_fake(features, rois, levels, spatial_scales, pooled_height, pooled_width, sampling_ratio, aligned):
    check_multi_scale_args(features, rois, levels, spatial_scales, pooled_height, pooled_width)
    return features[0].new_empty((rois.shape[0], features[0].shape[1], pooled_height, pooled_width))


@torch.library.register_fake("maskx::_multi_scale_roi_align_backward")
def _multi_scale_roi_align_backward_fake(
    grad,
    rois,
    levels,
    spatial_scales,
    pooled_height,
    pooled_width,
    batch_size,
    channels,
    heights,
    widths,
    sampling_ratio,
    aligned,
    channels_last=False,
):
    format = torch.channels_last if channels_last else torch.contiguous_format
    return [
        torch.empty((batch_size, channels, h, w), dtype=grad.dtype, device=grad.device, memory_format=format)
        for h, w in zip(heights, widths)
    ]


def multi_scale_roi_align(
    features: list[Tensor],
    rois: Tensor,
    levels: Tensor,
    spatial_scales: Sequence[float],
    output_size,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign of RoI k from ``features[levels[k]]`` at ``spatial_scales[levels[k]]``.

    Args:
        features: pyramid levels, each Tensor[N, C, H_l, W_l] (same N, C, dtype, device).
        rois: Tensor[K, 5] of (batch index, x1, y1, x2, y2) in image coordinates.
        levels: Tensor[K] int64, the pyramid level of each RoI.
        spatial_scales: one scale per level.
        output_size, sampling_ratio, aligned: as in :func:`maskx_kernels.roi_align`.
    """
    pooled_h, pooled_w = pair(output_size, "output_size")
    features = list(features)
    spatial_scales = [float(s) for s in spatial_scales]
    return torch.ops.maskx.multi_scale_roi_align(
        features, rois, levels, spatial_scales, pooled_h, pooled_w, sampling_ratio, aligned
    )


def infer_scale(feature: Tensor, original_size: Sequence[int]) -> float:
    """The power of two closest to feature size / image size (torchvision's rule)."""
    return 2.0 ** round(math.log2(float(feature.shape[-2]) / float(original_size[0])))


def fpn_levels(boxes: Tensor, k_min: int, k_max: int, canonical_scale: int, canonical_level: int, eps: float = 1e-6) -> Tensor:
    """Level index in [0, k_max - k_min] of each box: Eq. (1) of the FPN paper, computed
    exactly as torchvision's LevelMapper does, on the boxes' device."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    level = torch.floor(
        canonical_level + torch.log2(torch.sqrt(area) / canonical_scale) + torch.tensor(eps, dtype=boxes.dtype)
    )
    return (torch.clamp(level, min=k_min, max=k_max).to(torch.int64) - k_min).to(torch.int64)


class MultiScaleRoIAlign(nn.Module):
    """Drop-in for torchvision.ops.MultiScaleRoIAlign (same level assignment and output).

    Args:
        featmap_names: keys of the feature dict to pool from, finest level first.
        output_size: int or (height, width).
        sampling_ratio: as in :func:`maskx_kernels.roi_align`.
        canonical_scale, canonical_level: a box of canonical_scale x canonical_scale
            pixels is pooled from level canonical_level.
        aligned: shift box coordinates by half a pixel before pooling, as
            :func:`maskx_kernels.roi_align` does (detectron2's ROIAlignV2). Off by default,
            as in torchvision's pooler.
    """

    def __init__(
        self,
        featmap_names: list[str],
        output_size,
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
        aligned: bool = False,
    ):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.featmap_names = featmap_names
        self.sampling_ratio = sampling_ratio
        self.output_size = tuple(output_size)
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level
        self.aligned = aligned

    def forward(
        self,
        x: dict[str, Tensor],
        boxes: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> Tensor:
        """Pools ``boxes[i]`` (Tensor[L_i, 4], image coordinates) from image i of every level."""
        check(len(image_shapes) > 0, lambda: "MultiScaleRoIAlign: image_shapes must not be empty")
        missing = [name for name in self.featmap_names if name not in x]
        check(not missing, lambda: f"MultiScaleRoIAlign: feature maps {missing} are missing from the input")
        return self.pool([x[name] for name in self.featmap_names], boxes, image_shapes)

    def pool(self, features: list[Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        """Pools ``boxes`` from the feature maps, finest first, each RoI from its level."""
        original_size = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        scales = [infer_scale(f, original_size) for f in features]
        rois = boxes_to_rois(boxes)
        if len(features) == 1:
            levels = torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
        else:
            k_min = int(-math.log2(scales[0]))
            k_max = int(-math.log2(scales[-1]))
            levels = fpn_levels(rois[:, 1:], k_min, k_max, self.canonical_scale, self.canonical_level)
        return multi_scale_roi_align(features, rois, levels, scales, self.output_size, self.sampling_ratio, self.aligned)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(featmap_names={self.featmap_names}, "
            f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio}, aligned={self.aligned})"
        )
