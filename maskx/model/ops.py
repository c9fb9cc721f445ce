"""The model's hot-path operations, in two interchangeable sets (``ModelConfig.ops``).

``maskx``: the maskx_kernels ops: all FPN levels pooled in one call, detection
post-processing in one native call, T in one call, and mask logits and loss computed for
each RoI's own class only, masks pasted into the image in one call. ``torchvision``: torchvision.ops and plain PyTorch, computing
what torchvision's Mask R-CNN computes (one RoIAlign call per level, a Python loop of
per-class NMS, every class's mask logits then a pick, masks pasted one at a time). Both sets take the same parameters
and give the same results, so one model can run on either: the torchvision set is the
reference the maskx set is checked against, and the baseline its speed is measured by.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.ops import boxes as box_ops

# Private helpers of torchvision's pooler (pinned torchvision), reused so that the aligned
# variant below pools exactly as the stock pooler does.
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales

import maskx_kernels as mk
from maskx_kernels.reference import mask_logits as plain_mask

# torchvision's postprocess_detections drops boxes narrower or lower than this (pixels).
MIN_BOX_SIZE = 1e-2


class TorchvisionPooler(torchvision.ops.MultiScaleRoIAlign):
    """torchvision's FPN pooler, with RoIAlign's ``aligned`` flag (stock: always off)."""

    def __init__(self, featmap_names: list[str], output_size: int, sampling_ratio: int, aligned: bool):
        super().__init__(featmap_names, output_size, sampling_ratio)
        self.aligned = aligned

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        if not self.aligned:
            return super().forward(x, boxes, image_shapes)
        features = _filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                features, image_shapes, self.canonical_scale, self.canonical_level)
        rois = _convert_to_roi_format(boxes)
        levels = self.map_levels(boxes)
        result = features[0].new_zeros((rois.shape[0], features[0].shape[1]) + self.output_size)
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            at_level = torch.where(levels == level)[0]
            result[at_level] = torchvision.ops.roi_align(
                feature, rois[at_level], self.output_size, scale, self.sampling_ratio, aligned=True)
        return result


def _select_detections_torchvision(boxes: Tensor, scores: Tensor, score_thresh: float, nms_thresh: float,
                                   max_detections: int) -> tuple[Tensor, Tensor, Tensor]:
    """torchvision's postprocess_detections on one image: score filter, small-box removal,
    per-class NMS, top-k. ``boxes`` [N, C, 4], ``scores`` [N, C] -> boxes, scores, class index."""
    classes = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    boxes, scores, classes = boxes.reshape(-1, 4), scores.reshape(-1), classes.reshape(-1)
    keep = torch.where(scores > score_thresh)[0]
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    keep = box_ops.remove_small_boxes(boxes, min_size=MIN_BOX_SIZE)
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    keep = box_ops.batched_nms(boxes, scores, classes, nms_thresh)[:max_detections]
    return boxes[keep], scores[keep], classes[keep]


def _select_detections_maskx(boxes: Tensor, scores: Tensor, score_thresh: float, nms_thresh: float,
                             max_detections: int) -> tuple[Tensor, Tensor, Tensor]:
    """The same in one multiclass_nms call; small boxes are removed by zeroing their score
    (candidates need a score above the threshold, which is never negative)."""
    size = boxes[..., 2:] - boxes[..., :2]
    small = (size < MIN_BOX_SIZE).any(dim=-1)
    boxes, scores, classes, _ = mk.multiclass_nms(
        boxes, scores.masked_fill(small, 0.0), score_thresh, nms_thresh, max_detections)
    return boxes, scores, classes


def _transfer_plain(x: Tensor, weights: list[Tensor], biases: list[Tensor], negative_slope: float) -> Tensor:
    """T as a chain of linear layers with LeakyReLU between them (slope 0: ReLU, 1: none)."""
    for i, (weight, bias) in enumerate(zip(weights, biases)):
        x = F.linear(x, weight, bias)
        if i + 1 < len(weights):
            x = F.leaky_relu(x, negative_slope)
    return x


@dataclass(frozen=True)
class DetectionOps:
    """One implementation of each hot-path operation."""

    name: str
    # (featmap_names, output_size, sampling_ratio, aligned) -> FPN pooler module.
    pooler: Callable[[list[str], int, int, bool], nn.Module]
    # torchvision.ops.roi_align's signature (mask targets are RoIAligned ground truth).
    roi_align: Callable[..., Tensor]
    # torchvision.ops.batched_nms's signature (RPN proposals, NMS per level).
    batched_nms: Callable[[Tensor, Tensor, Tensor, float], Tensor]
    # (boxes [N, C, 4], scores [N, C], score_thresh, nms_thresh, max_detections)
    #   -> (boxes [M, 4], scores [M], class index [M]).
    select_detections: Callable[[Tensor, Tensor, float, float, int], tuple[Tensor, Tensor, Tensor]]
    # maskx_kernels.transfer_mlp's signature.
    transfer: Callable[[Tensor, list[Tensor], list[Tensor], float], Tensor]
    # maskx_kernels.per_class_mask_logits / per_class_mask_loss signatures.
    mask_logits: Callable[..., Tensor]
    mask_loss: Callable[..., Tensor]
    # (masks [N, 1, M, M] probabilities, boxes [N, 4], (height, width)) -> [N, 1, H, W]:
    # each mask resized into its box of the image (torchvision's paste_masks_in_image).
    paste_masks: Callable[[Tensor, Tensor, tuple[int, int]], Tensor]


MASKX_OPS = DetectionOps(
    name="maskx",
    pooler=lambda names, size, ratio, aligned: mk.MultiScaleRoIAlign(names, size, ratio, aligned=aligned),
    roi_align=mk.roi_align,
    batched_nms=mk.batched_nms,
    select_detections=_select_detections_maskx,
    transfer=mk.transfer_mlp,
    mask_logits=mk.per_class_mask_logits,
    mask_loss=mk.per_class_mask_loss,
    paste_masks=lambda masks, boxes, size: mk.paste_masks(masks, boxes, size, threshold=None),
)

TORCHVISION_OPS = DetectionOps(
    name="torchvision",
    pooler=TorchvisionPooler,
    roi_align=torchvision.ops.roi_align,
    batched_nms=box_ops.batched_nms,
    select_detections=_select_detections_torchvision,
    transfer=_transfer_plain,
    mask_logits=plain_mask.per_class_mask_logits,
    mask_loss=plain_mask.per_class_mask_loss,
    paste_masks=paste_masks_in_image,
)

_OPS = {ops.name: ops for ops in (MASKX_OPS, TORCHVISION_OPS)}


def get_ops(name: str) -> DetectionOps:
    try:
        return _OPS[name]
    except KeyError:
        raise ValueError(f"unknown ops {name!r}; use one of {sorted(_OPS)}") from None

