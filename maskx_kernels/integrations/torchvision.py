"""maskx's kernels in a torchvision detector with one call, without changing its output.

    import maskx_kernels.integrations.torchvision as mxtv

    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=...)
    mxtv.accelerate(model)          # in place; returns the model
    ...
    mxtv.restore(model)             # torchvision's own modules again
    with mxtv.accelerated(model):   # or only for a block
        ...

``accelerate`` takes a torchvision ``FasterRCNN``, ``MaskRCNN`` or ``KeypointRCNN`` (any
backbone) and swaps in, where the model has torchvision's own module:

- ``roi_heads.box_roi_pool``, ``mask_roi_pool`` and ``keypoint_roi_pool``
  (``torchvision.ops.MultiScaleRoIAlign``) -> :class:`TorchvisionMultiScaleRoIAlign`, a
  ``maskx_kernels.MultiScaleRoIAlign`` with the same settings (all levels in one call);
- box post-processing (``RoIHeads.postprocess_detections``: score filter, small-box
  removal, per-class NMS, top-k) -> ``maskx_kernels.multiclass_nms``;
- the mask predictor at inference -> the detected class's channel only, through
  ``maskx_kernels.per_class_mask_logits`` (torchvision computes all C classes);
- the RPN's per-level NMS (``RegionProposalNetwork.filter_proposals``) ->
  ``maskx_kernels.batched_nms``;
- pasting masks into the image (``GeneralizedRCNNTransform.postprocess``) ->
  ``maskx_kernels.paste_masks``.

The detections are the stock model's: the same boxes, labels and scores, and the same
mask pixels after thresholding at 0.5 (the mask probabilities differ from torchvision's
by float rounding: the per-class logits sum their channels in another order). Training
mode runs torchvision's code with maskx's poolers (pooling and its backward are maskx's;
the RPN's NMS too); ``torch.compile`` works on the accelerated model.

The swaps change the classes of ``model.roi_heads``, ``model.rpn`` and ``model.transform``
to subclasses defined here (when they are exactly torchvision's classes; a subclass of
one is left alone, as it may change what these methods do) and replace the poolers; the
weights and ``state_dict`` are untouched. ``restore`` undoes every swap.
"""
import contextlib
import math

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads, keypointrcnn_inference, maskrcnn_inference
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes, resize_keypoints
from torchvision.ops import boxes as box_ops

import maskx_kernels
from maskx_kernels._validation import check

__all__ = ["TorchvisionMultiScaleRoIAlign", "accelerate", "accelerated", "is_accelerated", "restore"]

MASK_OUTPUTS = ("probabilities", "binary", "rle")
_STATE = "_maskx_accelerate_state"


class TorchvisionMultiScaleRoIAlign(maskx_kernels.MultiScaleRoIAlign):
    """``maskx_kernels.MultiScaleRoIAlign`` that picks its feature maps as torchvision's
    pooler does: the maps of ``x`` whose names are in ``featmap_names``, in ``x``'s order,
    skipping names that ``x`` lacks (torchvision's MobileNet detectors name four maps and
    their FPN makes two of them)."""

    @classmethod
    def from_torchvision(cls, pooler: torchvision.ops.MultiScaleRoIAlign) -> "TorchvisionMultiScaleRoIAlign":
        return cls(
            list(pooler.featmap_names),
            pooler.output_size,
            pooler.sampling_ratio,
            canonical_scale=pooler.canonical_scale,
            canonical_level=pooler.canonical_level,
        )

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        names = [name for name in x if name in self.featmap_names]
        if names == list(self.featmap_names):
            return super().forward(x, boxes, image_shapes)
        check(len(image_shapes) > 0, lambda: "MultiScaleRoIAlign: image_shapes must not be empty")
        check(len(names) > 0, lambda: f"MultiScaleRoIAlign: none of the feature maps {self.featmap_names} is in the input")
        return self.pool([x[name] for name in names], boxes, image_shapes)


def _as_threshold(value: float, dtype: torch.dtype) -> float:
    """The threshold that maskx's ops (which compare in float64) apply as torchvision's
    ``scores > value`` does on a tensor of `dtype`: the value rounded to that dtype."""
    return float(torch.tensor(value, dtype=dtype))


def _loops_over_classes(num_boxes: int, device: torch.device) -> bool:
    """Whether torchvision's batched_nms takes its loop over classes (over 4000
    coordinates on the CPU, 100000 elsewhere, in torchvision 0.29) rather than one NMS
    of offset boxes."""
    return num_boxes * 4 > (4000 if device.type == "cpu" else 100_000)


def _has_ties(sorted_scores: Tensor) -> bool:
    """Whether scores in decreasing order hold equal neighbours."""
    return bool((sorted_scores[1:] == sorted_scores[:-1]).any())


def _torchvision_order(ids: Tensor, scores: Tensor) -> Tensor:
    """Positions into maskx's NMS output in the order torchvision's loop over classes
    returns them (`ids`: the kept boxes' indices among the NMS input, `scores` theirs).

    maskx keeps the boxes torchvision keeps, by decreasing score with equal scores by
    index, as torchvision's single NMS (a stable sort) orders them. Its loop over classes
    instead sorts the kept scores, taken in index order, with a non-stable sort, which
    orders equal scores its own way; the same sort of the same values gives the same
    order, so equal scores (common with random weights) come out as torchvision's do.
    Without equal scores among the first k + 1 kept, the first k are in the same order
    in both, which the callers check first."""
    by_index = ids.argsort()
    return by_index[scores[by_index].sort(descending=True)[1]]


def _class_logits_layer(predictor: nn.Module) -> nn.Conv2d | None:
    """The per-class 1x1 convolution that ends a MaskRCNNPredictor-like predictor
    (an nn.Sequential), or None for a predictor of another form."""
    if not isinstance(predictor, nn.Sequential) or len(predictor) == 0:
        return None
    last = predictor[-1]
    plain_1x1 = (
        type(last) is nn.Conv2d
        and last.kernel_size == (1, 1)
        and last.stride == (1, 1)
        and last.padding == (0, 0)
        and last.dilation == (1, 1)
        and last.groups == 1
    )
    return last if plain_1x1 else None


def mask_probabilities(predictor: nn.Module, features: Tensor, labels: list[Tensor]) -> list[Tensor]:
    """torchvision's ``maskrcnn_inference(predictor(features), labels)``: per image, the
    [n_i, 1, M, M] probabilities of each detection's own class. For a MaskRCNNPredictor
    only the detected class's channel is computed (per_class_mask_logits with the sigmoid)."""
    layer = _class_logits_layer(predictor)
    if layer is None:
        return maskrcnn_inference(predictor(features), labels)
    x = features
    for module in list(predictor)[:-1]:
        x = module(x)
    weight = layer.weight.reshape(layer.weight.shape[0], layer.weight.shape[1])
    probs = maskx_kernels.per_class_mask_logits(x, weight, torch.cat(labels), layer.bias, sigmoid=True)
    return list(probs[:, None].split([label.shape[0] for label in labels], dim=0))


class _AcceleratedRoIHeads(RoIHeads):
    """torchvision's RoIHeads; at inference, post-processing by multiclass_nms and masks
    of the detected class only. Training runs torchvision's code."""

    def postprocess_detections(
        self,
        class_logits: Tensor,
        box_regression: Tensor,
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        if not (0.0 <= self.score_thresh <= 1.0 and 0.0 <= self.nms_thresh <= 1.0):
            return super().postprocess_detections(class_logits, box_regression, proposals, image_shapes)
        sizes = [p.shape[0] for p in proposals]
        pred_boxes = self.box_coder.decode(box_regression, proposals).split(sizes, 0)
        pred_scores = F.softmax(class_logits, -1).split(sizes, 0)
        score_thresh = _as_threshold(self.score_thresh, class_logits.dtype)
        all_boxes, all_scores, all_labels = [], [], []
        for boxes, scores, image_shape in zip(pred_boxes, pred_scores, image_shapes):
            # Class 0 is the background. Boxes under 0.01 pixel wide or high are dropped
            # before NMS (remove_small_boxes), here by a score no threshold passes.
            boxes = box_ops.clip_boxes_to_image(boxes, image_shape)[:, 1:]
            small = (boxes[..., 2] - boxes[..., 0] < 1e-2) | (boxes[..., 3] - boxes[..., 1] < 1e-2)
            scores = scores[:, 1:].masked_fill(small, -1.0)
            # torchvision's candidates: the (row, class) pairs above the threshold.
            candidates = int((scores > self.score_thresh).sum())
            # Equal scores among the best k + 1 are the only way torchvision's order can
            # differ (see _torchvision_order); then take every survivor and sort as it does.
            k = self.detections_per_img
            loop = _loops_over_classes(candidates, scores.device)
            kept_boxes, kept_scores, labels, rows = maskx_kernels.multiclass_nms(
                boxes, scores, score_thresh, self.nms_thresh, k + 1 if loop else k
            )
            if loop and _has_ties(kept_scores):
                kept_boxes, kept_scores, labels, rows = maskx_kernels.multiclass_nms(
                    boxes, scores, score_thresh, self.nms_thresh, candidates
                )
                order = _torchvision_order(rows * scores.shape[1] + labels, kept_scores)
                kept_boxes, kept_scores, labels = kept_boxes[order], kept_scores[order], labels[order]
            kept_boxes, kept_scores, labels = kept_boxes[:k], kept_scores[:k], labels[:k]
            all_boxes.append(kept_boxes)
            all_scores.append(kept_scores)
            all_labels.append(labels + 1)
        return all_boxes, all_scores, all_labels

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            return super().forward(features, proposals, image_shapes, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        boxes, scores, labels = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
        result = [{"boxes": b, "labels": l, "scores": s} for b, s, l in zip(boxes, scores, labels)]
        if self.has_mask():
            mask_features = self.mask_head(self.mask_roi_pool(features, boxes, image_shapes))
            for r, probs in zip(result, mask_probabilities(self.mask_predictor, mask_features, labels)):
                r["masks"] = probs
        if self.keypoint_roi_pool is not None and self.keypoint_head is not None and self.keypoint_predictor is not None:
            keypoint_features = self.keypoint_head(self.keypoint_roi_pool(features, boxes, image_shapes))
            keypoint_logits = self.keypoint_predictor(keypoint_features)
            keypoints, keypoint_scores = keypointrcnn_inference(keypoint_logits, boxes)
            for r, k, s in zip(result, keypoints, keypoint_scores):
                r["keypoints"] = k
                r["keypoints_scores"] = s
        return result, {}


class _AcceleratedRegionProposalNetwork(RegionProposalNetwork):
    """torchvision's RPN with the per-level NMS of filter_proposals by maskx's batched_nms."""

    def filter_proposals(
        self,
        proposals: Tensor,
        objectness: Tensor,
        image_shapes: list[tuple[int, int]],
        num_anchors_per_level: list[int],
    ) -> tuple[list[Tensor], list[Tensor]]:
        num_images, device = proposals.shape[0], proposals.device
        objectness = objectness.detach().reshape(num_images, -1)
        levels = torch.cat(
            [torch.full((n,), level, dtype=torch.int64, device=device) for level, n in enumerate(num_anchors_per_level)]
        )
        # The best pre_nms_top_n anchors of every level, per image.
        top_n = self._get_top_n_idx(objectness, num_anchors_per_level)
        images = torch.arange(num_images, device=device)[:, None]
        probs = torch.sigmoid(objectness[images, top_n])
        levels = levels[top_n]
        proposals = proposals[images, top_n]
        final_boxes, final_scores = [], []
        for boxes, scores, level, image_shape in zip(proposals, probs, levels, image_shapes):
            boxes = box_ops.clip_boxes_to_image(boxes, image_shape)
            keep = box_ops.remove_small_boxes(boxes, self.min_size)
            boxes, scores, level = boxes[keep], scores[keep], level[keep]
            keep = torch.where(scores >= self.score_thresh)[0]
            boxes, scores, level = boxes[keep], scores[keep], level[keep]
            keep = maskx_kernels.batched_nms(boxes, scores, level, self.nms_thresh)
            top = self.post_nms_top_n()
            if _loops_over_classes(boxes.shape[0], boxes.device) and _has_ties(scores[keep[: top + 1]]):
                keep = keep[_torchvision_order(keep, scores[keep])]
            keep = keep[:top]
            final_boxes.append(boxes[keep])
            final_scores.append(scores[keep])
        return final_boxes, final_scores


class _AcceleratedTransform(GeneralizedRCNNTransform):
    """torchvision's transform with masks pasted by maskx_kernels.paste_masks."""

    _maskx_masks = "probabilities"
    _maskx_mask_threshold = 0.5

    def postprocess(
        self,
        result: list[dict[str, Tensor]],
        image_shapes: list[tuple[int, int]],
        original_image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        if self.training:
            return result
        for pred, size, original_size in zip(result, image_shapes, original_image_sizes):
            boxes = resize_boxes(pred["boxes"], size, original_size)
            pred["boxes"] = boxes
            if "masks" in pred:
                masks, threshold = pred["masks"], self._maskx_mask_threshold
                if self._maskx_masks == "probabilities":
                    pred["masks"] = maskx_kernels.paste_masks(masks, boxes, original_size, threshold=None)
                elif self._maskx_masks == "binary":
                    pred["masks"] = maskx_kernels.paste_masks(masks, boxes, original_size, threshold=threshold)
                else:
                    pred["masks"] = maskx_kernels.paste_masks_rle(masks, boxes, original_size, threshold=threshold)
            if "keypoints" in pred:
                pred["keypoints"] = resize_keypoints(pred["keypoints"], size, original_size)
        return result


_CLASS_SWAPS = (
    ("roi_heads", RoIHeads, _AcceleratedRoIHeads),
    ("rpn", RegionProposalNetwork, _AcceleratedRegionProposalNetwork),
    ("transform", GeneralizedRCNNTransform, _AcceleratedTransform),
)
_POOLERS = ("box_roi_pool", "mask_roi_pool", "keypoint_roi_pool")


class _State:
    """What accelerate replaced, for restore: the original poolers by attribute name and
    the names of the modules whose class changed."""

    def __init__(self):
        self.poolers: dict[str, nn.Module] = {}
        self.swapped: list[str] = []


def _check_model(model) -> None:
    if isinstance(model, torchvision.models.detection.FasterRCNN):
        return
    hint = ""
    if hasattr(model, "_orig_mod"):
        hint = " (a torch.compile'd module: accelerate the model first, then compile it)"
    raise TypeError(
        "accelerate: expected a torchvision FasterRCNN, MaskRCNN or KeypointRCNN "
        f"(torchvision.models.detection), got {type(model).__name__}{hint}"
    )


def is_accelerated(model: nn.Module) -> bool:
    """Whether :func:`accelerate` has swapped maskx's kernels into ``model``."""
    return getattr(model, _STATE, None) is not None


def accelerate(model: nn.Module, *, masks: str = "probabilities", mask_threshold: float = 0.5) -> nn.Module:
    """Swaps maskx's kernels into a torchvision FasterRCNN, MaskRCNN or KeypointRCNN, in
    place (see the module's documentation for what is replaced), and returns it.

    Calling it again is harmless (it only updates the mask options).

    Args:
        model: a detector built by ``torchvision.models.detection`` (any backbone).
        masks: the form of Mask R-CNN's ``"masks"`` output at inference:
            ``"probabilities"`` (default): float [N, 1, H, W], as torchvision returns;
            ``"binary"``: bool [N, 1, H, W], probability > ``mask_threshold`` (a quarter
            of the memory, and faster);
            ``"rle"``: a list of N COCO compressed RLE dicts (``paste_masks_rle``), never
            building the image-sized masks (for COCO evaluation and results files).
        mask_threshold: the threshold of the "binary" and "rle" outputs.

    Raises:
        TypeError: ``model`` is not a torchvision FasterRCNN, MaskRCNN or KeypointRCNN.
        ValueError: an unknown ``masks`` form or a non-finite ``mask_threshold``.
    """
    _check_model(model)
    check(masks in MASK_OUTPUTS, lambda: f"accelerate: masks must be one of {MASK_OUTPUTS}, got {masks!r}")
    check(math.isfinite(mask_threshold), lambda: f"accelerate: mask_threshold must be finite, got {mask_threshold}")
    state = getattr(model, _STATE, None) or _State()
    roi_heads = model.roi_heads
    for name in _POOLERS:
        pooler = getattr(roi_heads, name, None)
        if type(pooler) is torchvision.ops.MultiScaleRoIAlign:
            state.poolers[name] = pooler
            setattr(roi_heads, name, TorchvisionMultiScaleRoIAlign.from_torchvision(pooler))
    for name, original, replacement in _CLASS_SWAPS:
        module = getattr(model, name)
        if type(module) is original:
            module.__class__ = replacement
            state.swapped.append(name)
    if isinstance(model.transform, _AcceleratedTransform):
        model.transform._maskx_masks = masks
        model.transform._maskx_mask_threshold = float(mask_threshold)
    setattr(model, _STATE, state)
    return model


def restore(model: nn.Module) -> nn.Module:
    """Undoes :func:`accelerate`: torchvision's own poolers and classes again (a model
    that was not accelerated is returned unchanged)."""
    state = getattr(model, _STATE, None)
    if state is None:
        return model
    for name, pooler in state.poolers.items():
        setattr(model.roi_heads, name, pooler)
    originals = {name: original for name, original, _ in _CLASS_SWAPS}
    for name in state.swapped:
        module = getattr(model, name)
        module.__class__ = originals[name]
        for attribute in ("_maskx_masks", "_maskx_mask_threshold"):
            module.__dict__.pop(attribute, None)
    delattr(model, _STATE)
    return model


@contextlib.contextmanager
def accelerated(model: nn.Module, **options):
    """``with accelerated(model): ...`` runs the block with maskx's kernels swapped in
    (options as for :func:`accelerate`) and restores the model afterwards, unless it was
    accelerated before the block."""
    already = is_accelerated(model)
    accelerate(model, **options)
    try:
        yield model
    finally:
        if not already:
            restore(model)
