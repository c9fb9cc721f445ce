"""Up-front checks of COCO detection results against their ground truth."""

from __future__ import annotations

import os
from typing import Any

from pycocotools.coco import COCO

from maskx.data.errors import AnnotationError
from maskx.data.validation import bbox_problem, is_int, is_number, segmentation_problem

# What each COCOeval iouType reads from a result.
RESULT_KEYS = {"bbox": "bbox", "segm": "segmentation"}


def validate_results(results: Any, gt: COCO, path: str | os.PathLike) -> None:
    """Raise ``AnnotationError`` unless ``results`` can be evaluated against ``gt``.

    Results are a list of dicts with ``image_id``, ``category_id`` and ``score``, plus a
    ``bbox`` and/or a compressed-RLE ``segmentation`` at image size; every result must
    carry the same of these two keys.
    """
    if not isinstance(results, list):
        raise AnnotationError(
            path, f"expected a JSON list of results, got {type(results).__name__}")
    expected_keys = None
    for index, result in enumerate(results):
        item = f"result {index}"
        if not isinstance(result, dict):
            raise AnnotationError(path, "a result must be an object", item)
        image_id = result.get("image_id")
        if not is_int(image_id) or image_id not in gt.imgs:
            raise AnnotationError(
                path, f"image_id {image_id!r} is not an image of the ground truth", item)
        item = f"result {index} (image_id {image_id})"
        category_id = result.get("category_id")
        if not is_int(category_id) or category_id not in gt.cats:
            raise AnnotationError(
                path, f"category_id {category_id!r} is not a ground-truth category", item)
        if not is_number(result.get("score")):
            raise AnnotationError(
                path, f"score must be a finite number, got {result.get('score')!r}", item)
        keys = tuple(key in result for key in RESULT_KEYS.values())
        if not any(keys):
            raise AnnotationError(path, "a result needs a 'bbox' or a 'segmentation'", item)
        expected_keys = expected_keys or keys
        if keys != expected_keys:
            raise AnnotationError(
                path, "every result must carry the same of 'bbox' / 'segmentation' as the first",
                item)
        image = gt.imgs[image_id]
        problem = None
        if "bbox" in result:
            problem = bbox_problem(result["bbox"], image["width"], image["height"])
        if problem is None and "segmentation" in result:
            problem = segmentation_problem(result["segmentation"], image["width"], image["height"],
                                           compressed_rle_only=True)
        if problem:
            raise AnnotationError(path, problem, item)


def iou_types_of(results: list[dict]) -> list[str]:
    """The evaluations a (validated) results list supports; empty results support all."""
    if not results:
        return list(RESULT_KEYS)
    return [iou_type for iou_type, key in RESULT_KEYS.items() if key in results[0]]
