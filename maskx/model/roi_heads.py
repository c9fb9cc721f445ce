"""RoI heads of Mask^X R-CNN: torchvision's box head, the mask branch, partial supervision.

torchvision's ``RoIHeads`` samples and matches the RoIs and computes the box losses (on
classes A and B alike). What changes here:

- the mask loss is computed on the positive RoIs whose ground-truth instance has a mask
  (``has_mask``: set A); RoIs of set-B instances are left out of the mask branch
  altogether, not treated as background;
- the mask predictor reads the box predictor's weights (transfer) and computes the mask
  of each RoI's own class only, in training and at inference;
- pooling, post-processing and the mask ops come from ``ops`` (maskx or torchvision).

The steps are methods of their own (``detect``, ``mask_training_inputs``, ``add_masks``)
so stage-wise training and evaluation can run several mask branches on one detector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import boxes as box_ops

from maskx.model.config import BoxHeadConfig
from maskx.model.mask_head import MaskBranch
from maskx.model.ops import DetectionOps


class MaskXRoIHeads(RoIHeads):
    def __init__(self, box_roi_pool: nn.Module, box_head: nn.Module, box_predictor: nn.Module,
                 config: BoxHeadConfig, ops: DetectionOps, mask_roi_pool: nn.Module | None = None,
                 mask_branch: MaskBranch | None = None):
        super().__init__(
            box_roi_pool, box_head, box_predictor,
            config.fg_iou_thresh, config.bg_iou_thresh, config.batch_size_per_image,
            config.positive_fraction, config.reg_weights,
            config.score_thresh, config.nms_thresh, config.detections_per_image)
        self.ops = ops
        self.mask_roi_pool = mask_roi_pool
        self.mask_branch = mask_branch

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]],
                targets: list[dict[str, Tensor]] | None = None):
        if not self.training:
            detections = self.detect(features, proposals, image_shapes)
            if self.mask_branch is not None:
                self.add_masks(features, detections, image_shapes, self.mask_branch)
            return detections, {}
        self._check_training_targets(targets)
        proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        class_logits, box_regression = self.box_outputs(features, proposals, image_shapes)
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
        losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        if self.mask_branch is not None:
            pooled, classes, mask_targets = self.mask_training_inputs(
                features, proposals, matched_idxs, labels, targets, image_shapes)
            losses["loss_mask"] = self.mask_branch.loss(pooled, classes, mask_targets, self.box_predictor)
        return [], losses

    def _check_training_targets(self, targets) -> None:
        if targets is None:
            raise ValueError("training needs targets")
        for i, target in enumerate(targets):
            if not target["boxes"].is_floating_point():
                raise TypeError(f"targets[{i}]['boxes'] must be a float tensor, got {target['boxes'].dtype}")
            if target["labels"].dtype != torch.int64:
                raise TypeError(f"targets[{i}]['labels'] must be int64, got {target['labels'].dtype}")
            if self.mask_branch is not None:
                for key in ("masks", "has_mask"):
                    if key not in target:
                        raise ValueError(f"targets[{i}] has no {key!r}: the mask branch needs instance masks "
                                         "and which instances have one (set A)")
                if target["has_mask"].shape != target["labels"].shape or target["has_mask"].dtype != torch.bool:
                    raise ValueError(f"targets[{i}]['has_mask'] must be a bool tensor with one entry per instance")

    def box_outputs(self, features: dict[str, Tensor], proposals: list[Tensor],
                    image_shapes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """Class logits [R, C] and box regression [R, 4C] of the proposals of every image."""
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        return self.box_predictor(box_features)

    def postprocess_detections(self, class_logits: Tensor, box_regression: Tensor, proposals: list[Tensor],
                               image_shapes: list[tuple[int, int]]):
        """torchvision's detection post-processing with the selection step from ``ops``."""
        counts = [len(p) for p in proposals]
        boxes_per_image = self.box_coder.decode(box_regression, proposals).split(counts)
        scores_per_image = F.softmax(class_logits, -1).split(counts)
        all_boxes, all_scores, all_labels = [], [], []
        for boxes, scores, shape in zip(boxes_per_image, scores_per_image, image_shapes):
            boxes = box_ops.clip_boxes_to_image(boxes, shape)
            # Column 0 is the background.
            boxes, scores, classes = self.ops.select_detections(
                boxes[:, 1:].contiguous(), scores[:, 1:].contiguous(),
                self.score_thresh, self.nms_thresh, self.detections_per_img)
            all_boxes.append(boxes)
            all_scores.append(scores)
            all_labels.append(classes + 1)
        return all_boxes, all_scores, all_labels

    def detect(self, features: dict[str, Tensor], proposals: list[Tensor],
               image_shapes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """Detections per image: ``boxes``, ``labels``, ``scores`` (no masks yet)."""
        class_logits, box_regression = self.box_outputs(features, proposals, image_shapes)
        boxes, scores, labels = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
        return [{"boxes": b, "labels": l, "scores": s} for b, l, s in zip(boxes, labels, scores)]

    def add_masks(self, features: dict[str, Tensor], detections: list[dict[str, Tensor]],
                  image_shapes: list[tuple[int, int]], branch: MaskBranch,
                  pooled: Tensor | None = None) -> None:
        """Adds ``masks`` [N, 1, M, M] (probabilities of each detection's class) to the
        detections. ``pooled`` (``mask_roi_pool`` of the detections) may be passed in when
        several branches read the same detections."""
        if pooled is None:
            pooled = self.mask_roi_pool(features, [d["boxes"] for d in detections], image_shapes)
        classes = torch.cat([d["labels"] for d in detections])
        probabilities = branch(pooled, classes, self.box_predictor, sigmoid=True)
        for detection, masks in zip(detections, probabilities.split([len(d["boxes"]) for d in detections])):
            detection["masks"] = masks[:, None]

    def mask_training_inputs(self, features: dict[str, Tensor], proposals: list[Tensor],
                             matched_idxs: list[Tensor], labels: list[Tensor],
                             targets: list[dict[str, Tensor]], image_shapes: list[tuple[int, int]]):
        """The mask branch's training inputs from sampled RoIs (``select_training_samples``):
        pooled features, classes and target masks [R, M, M] of the positive RoIs whose
        matched instance has a mask. Set-B instances (``has_mask`` False) contribute none."""
        boxes, classes, mask_targets = [], [], []
        resolution = 2 * self.mask_roi_pool.output_size[0]
        for image_proposals, matched, image_labels, target in zip(proposals, matched_idxs, labels, targets):
            positive = torch.where(image_labels > 0)[0]
            keep = positive[target["has_mask"][matched[positive]]]
            boxes.append(image_proposals[keep])
            classes.append(image_labels[keep])
            mask_targets.append(self._project_masks(target["masks"], matched[keep], image_proposals[keep], resolution))
        pooled = self.mask_roi_pool(features, boxes, image_shapes)
        return pooled, torch.cat(classes), torch.cat(mask_targets)

    def _project_masks(self, masks: Tensor, matched: Tensor, boxes: Tensor, resolution: int) -> Tensor:
        """Each RoI's ground-truth mask cropped to its box and resized to resolution^2
        (torchvision's ``project_masks_on_boxes``: RoIAlign of the binary mask), converting
        only the instances some RoI is matched to."""
        if len(boxes) == 0:
            return boxes.new_zeros((0, resolution, resolution))
        used, index = torch.unique(matched, return_inverse=True)
        rois = torch.cat([index[:, None].to(boxes.dtype), boxes], dim=1)
        projected = self.ops.roi_align(masks[used][:, None].to(boxes.dtype), rois, (resolution, resolution), 1.0)
        # Bilinear weights summing to 1 in float can land a rounding error above 1, which
        # the mask loss rejects as a target.
        return projected[:, 0].clamp_(0.0, 1.0)
