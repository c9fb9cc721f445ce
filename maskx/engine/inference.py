"""Inference over a data set: every mask head of a trained model on the same detections.

The detector (backbone, RPN, box head, post-processing) runs once per batch; each mask
head then predicts the masks of the same detected boxes. Variants compared this way
differ only through their mask heads, and a stage-wise run's heads cost one detector pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

import maskx_kernels as mk
from maskx.data import CocoInstanceDataset, collate_detection
from maskx.engine.trained_model import TrainedModel
from maskx.evaluation import detections_to_coco_results

# The name results go under when a model has no mask head (a stage-1 detector).
DETECTOR_ONLY = "detector"


@torch.inference_mode()
def predict(trained: TrainedModel, images: list[Tensor], heads: Sequence[str] | None = None, *,
            rle: bool = False) -> dict[str, list[dict]]:
    """Detections of ``images`` (float [3, H, W] in [0, 1]) with each head's masks.

    Returns ``{head name: [per-image torchvision detection dict]}`` with boxes and masks
    [N, 1, H, W] at each image's own size (torchvision's Mask R-CNN output format); with
    ``rle`` the masks are COCO compressed RLEs thresholded at 0.5, pasted straight into
    that form (``paste_masks_rle``: no image-sized mask is ever built).
    """
    model = trained.model
    model.eval()
    heads = list(trained.heads) if heads is None else list(heads)
    for name in heads:
        if name not in trained.heads:
            raise ValueError(f"no mask head {name!r}; heads: {', '.join(trained.heads) or 'none'}")
    original_sizes = [tuple(image.shape[-2:]) for image in images]
    image_list, _ = model.transform(images)
    features = model.backbone(image_list.tensors)
    proposals, _ = model.rpn(image_list, features)
    detections = model.roi_heads.detect(features, proposals, image_list.image_sizes)
    if not heads:
        return {DETECTOR_ONLY: model.transform.postprocess(detections, image_list.image_sizes, original_sizes)}
    pooled = model.roi_heads.mask_roi_pool(features, [d["boxes"] for d in detections], image_list.image_sizes)
    outputs = {}
    for name in heads:
        per_head = [dict(d) for d in detections]
        model.roi_heads.add_masks(features, per_head, image_list.image_sizes, trained.heads[name], pooled)
        small_masks = [d.pop("masks") for d in per_head] if rle else None
        outputs[name] = model.transform.postprocess(per_head, image_list.image_sizes, original_sizes)
        if rle:
            for detection, masks, size in zip(outputs[name], small_masks, original_sizes):
                detection["masks"] = mk.paste_masks_rle(masks, detection["boxes"], size)
    return outputs


def evaluation_dataset(image_dir, annotation_file) -> CocoInstanceDataset:
    """Every image of a COCO-format file, as COCOeval sees it; no masks decoded."""
    return CocoInstanceDataset(image_dir, annotation_file, split=(), train=False)


@dataclass
class InferenceRun:
    # COCO results (bbox and segmentation) per head.
    results: dict[str, list[dict]] = field(default_factory=dict)
    images: int = 0
    seconds: float = 0.0


def run_inference(trained: TrainedModel, dataset: CocoInstanceDataset, *, heads: Sequence[str] | None = None,
                  batch_size: int = 1, device: torch.device | str = "cpu", max_images: int | None = None,
                  num_workers: int = 0, progress: bool = True) -> InferenceRun:
    """Run every head over ``dataset`` and collect COCO results (masks as compressed RLE,
    straight from the pasting kernel)."""
    if dataset.category_map.category_ids != trained.category_map.category_ids:
        raise ValueError(f"{dataset.annotation_file}: its categories differ from the model's "
                         f"({len(dataset.category_map)} vs {len(trained.category_map)} categories)")
    indices = range(len(dataset) if max_images is None else min(max_images, len(dataset)))
    subset = torch.utils.data.Subset(dataset, list(indices))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, collate_fn=collate_detection,
                                         num_workers=num_workers)
    from tqdm import tqdm

    run = InferenceRun()
    start = time.perf_counter()
    for images, targets in tqdm(loader, desc="inference", disable=not progress, dynamic_ncols=True,
                                mininterval=1.0, unit="batch"):
        outputs = predict(trained, [image.to(device) for image in images], heads, rle=True)
        image_ids = [target["image_id"] for target in targets]
        for name, detections in outputs.items():
            run.results.setdefault(name, []).extend(
                detections_to_coco_results(image_ids, detections, trained.category_map))
        run.images += len(images)
    run.seconds = time.perf_counter() - start
    return run
