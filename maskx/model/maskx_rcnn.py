"""Mask^X R-CNN: torchvision's generalized R-CNN assembled from a ``ModelConfig``.

The parts are torchvision's (transform, FPN backbone, RPN, two-FC box head) except the
RoI heads (``MaskXRoIHeads``: partial mask supervision, the weight-transfer predictor)
and the ops on the hot paths (``maskx.model.ops``). Inputs and outputs are torchvision's
Mask R-CNN's: a list of images in, losses (training) or per-image detections with
``boxes``, ``labels``, ``scores`` and ``masks`` [N, 1, H, W] (inference) out. Training
targets additionally carry ``has_mask`` (which instances have masks: set A).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

from maskx.model.backbone import build_backbone
from maskx.model.config import ModelConfig
from maskx.model.mask_head import MaskBranch
from maskx.model.ops import DetectionOps, get_ops
from maskx.model.roi_heads import MaskXRoIHeads
from maskx.model.rpn import RegionProposals

FEATURE_MAPS = ["0", "1", "2", "3"]


def _box_predictor(representation: int, num_classes: int) -> FastRCNNPredictor:
    predictor = FastRCNNPredictor(representation, num_classes)
    # Detectron's initialisation: small initial scores and deltas, which trains from
    # scratch more steadily than nn.Linear's default.
    nn.init.normal_(predictor.cls_score.weight, std=0.01)
    nn.init.normal_(predictor.bbox_pred.weight, std=0.001)
    nn.init.zeros_(predictor.cls_score.bias)
    nn.init.zeros_(predictor.bbox_pred.bias)
    return predictor


class Transform(GeneralizedRCNNTransform):
    """torchvision's resizing and normalisation; detections are mapped back to the
    original images with the masks pasted by ``ops``."""

    def __init__(self, *args, ops: DetectionOps, **kwargs):
        super().__init__(*args, **kwargs)
        self.ops = ops

    def postprocess(self, result: list[dict[str, Tensor]], image_shapes: list[tuple[int, int]],
                    original_image_sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        if self.training:
            return result
        for detection, size, original in zip(result, image_shapes, original_image_sizes):
            detection["boxes"] = resize_boxes(detection["boxes"], size, original)
            if "masks" in detection:
                detection["masks"] = self.ops.paste_masks(detection["masks"], detection["boxes"], original)
        return result


def _to_channels_last(module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(memory_format=torch.channels_last),) + tuple(args[1:])


class MaskXRCNN(GeneralizedRCNN):
    """Mask R-CNN with partial mask supervision and a weight-transfer mask predictor.

    Args:
        config: the model's configuration (``maskx.model.ModelConfig``).
        embedding: the fixed class embedding [num_classes, E] when the predictor's
            ``transfer_input`` is ``embedding`` (``load_class_embedding`` reads one).
    """

    def __init__(self, config: ModelConfig, embedding: Tensor | None = None):
        ops = get_ops(config.ops)
        backbone = build_backbone(config.backbone)
        channels = backbone.out_channels
        anchors = AnchorGenerator(tuple((size,) for size in config.rpn.anchor_sizes),
                                  (tuple(config.rpn.aspect_ratios),) * len(config.rpn.anchor_sizes))
        rpn = RegionProposals(
            anchors, RPNHead(channels, anchors.num_anchors_per_location()[0]),
            config.rpn.fg_iou_thresh, config.rpn.bg_iou_thresh, config.rpn.batch_size_per_image,
            config.rpn.positive_fraction,
            dict(training=config.rpn.pre_nms_top_n_train, testing=config.rpn.pre_nms_top_n_test),
            dict(training=config.rpn.post_nms_top_n_train, testing=config.rpn.post_nms_top_n_test),
            config.rpn.nms_thresh, ops=ops)
        box = config.box
        box_roi_pool = ops.pooler(FEATURE_MAPS, box.pool_size, box.sampling_ratio, config.aligned)
        box_head = TwoMLPHead(channels * box.pool_size ** 2, box.representation_size)
        box_predictor = _box_predictor(box.representation_size, config.num_classes)
        mask_roi_pool = mask_branch = None
        if config.mask_on:
            mask_roi_pool = ops.pooler(FEATURE_MAPS, config.mask.pool_size, config.mask.sampling_ratio, config.aligned)
            mask_branch = MaskBranch(channels, config.mask, config.predictor, config.num_classes,
                                     box.representation_size, ops, embedding)
        roi_heads = MaskXRoIHeads(box_roi_pool, box_head, box_predictor, box, ops, mask_roi_pool, mask_branch)
        # Several min sizes: one drawn per image in training, the last one at inference.
        transform = Transform(config.min_size, config.max_size, list(config.image_mean), list(config.image_std),
                              ops=ops)
        super().__init__(backbone, rpn, roi_heads, transform)
        self.config = config
        if config.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
            self.backbone.register_forward_pre_hook(_to_channels_last)

    def new_mask_branch(self, predictor_config, embedding: Tensor | None = None) -> MaskBranch:
        """A freshly initialised mask branch for this model's detector (stage-wise training
        trains several of them on one detector)."""
        config = self.config
        return MaskBranch(self.backbone.out_channels, config.mask, predictor_config, config.num_classes,
                          config.box.representation_size, get_ops(config.ops), embedding)
