"""maskx_kernels.roi_align: torchvision.ops.roi_align's signature and results.

Native kernels: csrc/ops/cpu/roi_align_kernel.cpp and csrc/ops/cuda/roi_align_kernel.cu,
registered as torch.ops.maskx.roi_align (schema in csrc/ops/roi_align.cpp).
Autograd: csrc/ops/autograd/roi_align_autograd.cpp.
"""
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from maskx_kernels._validation import check, check_float, check_like, pair, should_check_values


def boxes_to_rois(boxes: Tensor | Sequence[Tensor]) -> Tensor:
    """A [K, 5] rois tensor from either itself or a per-image list of [L, 4] boxes."""
    if isinstance(boxes, Tensor):
        check(
            boxes.dim() == 2 and boxes.shape[1] == 5,
            lambda: f"boxes must be a Tensor[K, 5], got shape {list(boxes.shape)}",
        )
        return boxes
    check(
        isinstance(boxes, (list, tuple)),
        lambda: f"boxes must be a Tensor[K, 5] or a list of Tensor[L, 4], got {type(boxes)}",
    )
    check(len(boxes) > 0, lambda: "boxes must not be an empty list")
    for b in boxes:
        check(
            isinstance(b, Tensor) and b.dim() == 2 and b.shape[1] == 4,
            lambda: f"each element of the boxes list must be a Tensor[L, 4], got {getattr(b, 'shape', type(b))}",
        )
    concat = torch.cat(list(boxes), dim=0)
    index = torch.cat([torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)], dim=0)
    return torch.cat([index, concat], dim=1)


def check_rois(op: str, rois: Tensor, like_name: str, like: Tensor) -> None:
    check(
        rois.dim() == 2 and rois.shape[1] == 5,
        lambda: f"{op}: rois must be a Tensor[K, 5], got shape {list(rois.shape)}",
    )
    check_like(op, "rois", rois, like_name, like)


def check_roi_values(op: str, rois: Tensor, batch_size: int) -> None:
    """Batch indices must be integers in [0, batch_size); coordinates finite."""
    if rois.shape[0] == 0:
        return
    index = rois[:, 0]
    bad = (index != index.floor()) | (index < 0) | (index >= batch_size) | ~torch.isfinite(rois[:, 1:]).all(dim=1)
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{op}: RoI {k} = {rois[k].tolist()} needs an integer batch index in [0, {batch_size}) "
            "and finite coordinates"
        )


def check_roi_align_args(input: Tensor, rois: Tensor, spatial_scale: float, pooled_h: int, pooled_w: int) -> None:
    op = "roi_align"
    check(input.dim() == 4, lambda: f"{op}: input must be a Tensor[N, C, H, W], got shape {list(input.shape)}")
    check_float(op, "input", input)
    check_rois(op, rois, "input", input)
    check(pooled_h > 0 and pooled_w > 0, lambda: f"{op}: output size must be positive, got ({pooled_h}, {pooled_w})")
    check(
        spatial_scale > 0 and spatial_scale != float("inf"),
        lambda: f"{op}: spatial_scale must be positive and finite, got {spatial_scale}",
    )


@torch.library.register_fake("maskx::roi_align")
def _roi_align_fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    check_roi_align_args(input, rois, spatial_scale, pooled_height, pooled_width)
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


@torch.library.register_fake("maskx::_roi_align_backward")
def _roi_align_backward_fake(
    grad,
    rois,
    spatial_scale,
    pooled_height,
    pooled_width,
    batch_size,
    channels,
    height,
    width,
    sampling_ratio,
    aligned,
    channels_last=False,
):
    format = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((batch_size, channels, height, width), dtype=grad.dtype, device=grad.device, memory_format=format)


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign (Mask R-CNN), a drop-in for torchvision.ops.roi_align.

    Args:
        input: Tensor[N, C, H, W] (any memory format; float64/32/16 or bfloat16).
        boxes: Tensor[K, 5] of (batch index, x1, y1, x2, y2), or a list of Tensor[L, 4]
            boxes, one per image. Same dtype as ``input``.
        output_size: int or (height, width) of the pooled output.
        spatial_scale: maps box coordinates to input coordinates (e.g. 1/4 for P2).
        sampling_ratio: samples per bin along each axis; <= 0 picks ceil(roi size / bins).
        aligned: shift boxes by -0.5 pixel (Detectron2's ROIAlignV2).

    Returns:
        Tensor[K, C, output_size[0], output_size[1]], contiguous, in ``input``'s dtype.
    """
    rois = boxes_to_rois(boxes)
    pooled_h, pooled_w = pair(output_size, "output_size")
    if should_check_values(input, rois):
        # The values are read on the device, so the arguments are checked here first; on
        # the CPU the native op checks both.
        check_roi_align_args(input, rois, spatial_scale, pooled_h, pooled_w)
        check_roi_values("roi_align", rois, input.shape[0])
    return torch.ops.maskx.roi_align(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)


class RoIAlign(nn.Module):
    """See :func:`roi_align`."""

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int, aligned: bool = False):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned})"
        )
