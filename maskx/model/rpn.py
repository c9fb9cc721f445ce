"""torchvision's region proposal network with its proposal NMS taken from ``ops``.

Everything but ``filter_proposals`` is torchvision's. The NMS there (one per FPN level,
over up to 1000-2000 boxes per level and image) is the RPN's slowest step on the CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import boxes as box_ops

from maskx.model.ops import DetectionOps


class RegionProposals(RegionProposalNetwork):
    def __init__(self, *args, ops: DetectionOps, **kwargs):
        super().__init__(*args, **kwargs)
        self.ops = ops

    def filter_proposals(self, proposals: Tensor, objectness: Tensor, image_shapes: list[tuple[int, int]],
                         num_anchors_per_level: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        """Per image: the top pre-NMS proposals of every level, clipped, without tiny or
        low-scoring boxes, reduced by NMS within each level, the best post-NMS ones kept."""
        num_images = proposals.shape[0]
        device = proposals.device
        objectness = objectness.detach().reshape(num_images, -1)
        level_of_anchor = torch.repeat_interleave(
            torch.arange(len(num_anchors_per_level), device=device),
            torch.tensor(num_anchors_per_level, device=device))
        top = self._get_top_n_idx(objectness, num_anchors_per_level)
        rows = torch.arange(num_images, device=device)[:, None]
        scores_per_image = torch.sigmoid(objectness[rows, top])
        boxes_per_image = proposals[rows, top]
        levels_per_image = level_of_anchor[top]
        final_boxes, final_scores = [], []
        for boxes, scores, levels, shape in zip(boxes_per_image, scores_per_image, levels_per_image, image_shapes):
            boxes = box_ops.clip_boxes_to_image(boxes, shape)
            keep = box_ops.remove_small_boxes(boxes, self.min_size)
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
            keep = torch.where(scores >= self.score_thresh)[0]
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
            keep = self.ops.batched_nms(boxes, scores, levels, self.nms_thresh)[: self.post_nms_top_n()]
            final_boxes.append(boxes[keep])
            final_scores.append(scores[keep])
        return final_boxes, final_scores
