"""Detector outputs -> COCO results (the list of dicts that COCO's ``loadRes`` takes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from maskx.data.categories import CategoryMap


def to_numpy(value) -> np.ndarray:
    """Tensors (on any device) and arrays alike as arrays, without importing torch."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def encode_masks(masks, threshold: float = 0.5) -> list[dict]:
    """Masks at image size -> compressed RLEs with string counts (JSON-ready).

    ``masks`` is [N, 1, H, W] (torchvision's MaskRCNN output) or [N, H, W]; float values
    are probabilities, binarised with ``> threshold``; bool or integer values are taken as
    binary masks. A list of compressed RLEs (``maskx_kernels.paste_masks_rle``, or a
    model accelerated with ``masks="rle"``) is taken as it is (already thresholded).
    """
    if isinstance(masks, (list, tuple)):
        return [_json_rle(rle) for rle in masks]
    masks = to_numpy(masks)
    if masks.ndim == 4:
        if masks.shape[1] != 1:
            raise ValueError(f"masks of shape {masks.shape}: expected [N, 1, H, W]")
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"masks of shape {masks.shape}: expected [N, H, W] or [N, 1, H, W]")
    if masks.shape[0] == 0:
        return []
    binary = masks > threshold if masks.dtype.kind == "f" else masks.astype(bool)
    rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0).astype(np.uint8)))
    return [_json_rle(rle) for rle in rles]


def _json_rle(rle: Mapping) -> dict:
    """A compressed RLE with string counts."""
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"expected a compressed RLE dict with 'size' and 'counts', got {type(rle).__name__}")
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def detections_to_coco_results(
    image_ids: Sequence[int],
    outputs: Iterable[Mapping],
    category_map: CategoryMap,
    mask_threshold: float = 0.5,
) -> list[dict]:
    """Convert per-image detector outputs to COCO results.

    ``outputs`` are torchvision detection dicts, one per image id, in the original image
    coordinates: ``boxes`` [N, 4] (x1, y1, x2, y2), ``scores`` [N], ``labels`` [N]
    (contiguous labels of ``category_map``) and optionally ``masks`` (see
    ``encode_masks``). Each result has ``image_id``, ``category_id``, ``bbox`` (x, y, w, h),
    ``score`` and, when masks were given, ``segmentation`` (compressed RLE).
    """
    outputs = list(outputs)
    if len(outputs) != len(image_ids):
        raise ValueError(f"{len(outputs)} outputs for {len(image_ids)} image ids")
    results = []
    for image_id, output in zip(image_ids, outputs):
        boxes = to_numpy(output["boxes"]).astype(np.float64).reshape(-1, 4)
        scores = to_numpy(output["scores"]).astype(np.float64).reshape(-1)
        labels = to_numpy(output["labels"]).reshape(-1)
        if not len(boxes) == len(scores) == len(labels):
            raise ValueError(f"image {image_id}: boxes, scores and labels differ in length")
        category_ids = category_map.category_ids_of(labels)
        boxes[:, 2:] -= boxes[:, :2]
        rles = None
        if "masks" in output:
            rles = encode_masks(output["masks"], mask_threshold)
            if len(rles) != len(boxes):
                raise ValueError(f"image {image_id}: {len(rles)} masks for {len(boxes)} boxes")
        for i in range(len(boxes)):
            result = {
                "image_id": int(image_id),
                "category_id": int(category_ids[i]),
                "bbox": [float(v) for v in boxes[i]],
                "score": float(scores[i]),
            }
            if rles is not None:
                result["segmentation"] = rles[i]
            results.append(result)
    return results
