"""Up-front checks of COCO-format annotation files.

Everything a data loader or COCOeval would trip over later is checked when the file is
loaded, so a bad file fails with an ``AnnotationError`` naming the file and the entry
before any training or evaluation starts, never inside a data loader worker.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from pycocotools.coco import COCO

from maskx.data.coco_api import build_coco
from maskx.data.errors import AnnotationError

# COCO boxes are derived from float polygons and may overhang the image a little.
BOX_TOLERANCE = 2.0

_ANNOTATION_KEYS = ("image_id", "category_id", "bbox", "area", "iscrowd")


def read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise AnnotationError(path, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(path, f"not valid JSON ({exc})") from None


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def bbox_problem(bbox, width: int, height: int) -> str | None:
    """Why a COCO ``[x, y, w, h]`` box is unusable in a ``width`` x ``height`` image."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(is_number, bbox)):
        return f"bbox must be 4 finite numbers [x, y, width, height], got {bbox!r}"
    x, y, w, h = bbox
    if w < 0 or h < 0:
        return f"bbox {bbox} has a negative size"
    if (x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > width + BOX_TOLERANCE
            or y + h > height + BOX_TOLERANCE):
        return f"bbox {bbox} lies outside the {width}x{height} image"
    return None


def segmentation_problem(segmentation, width: int, height: int,
                         compressed_rle_only: bool = False) -> str | None:
    """Why a COCO segmentation (polygons or RLE) cannot be decoded for this image."""
    if isinstance(segmentation, list):
        if compressed_rle_only:
            return "segmentation must be a compressed RLE dict ({'size', 'counts': str})"
        if not segmentation:
            return "segmentation is an empty polygon list"
        for polygon in segmentation:
            if not isinstance(polygon, list):
                return "segmentation polygons must be lists of x, y coordinates"
            if len(polygon) < 6:
                return "segmentation has a polygon with fewer than 3 points"
            if len(polygon) % 2:
                return "segmentation has a polygon with an odd number of coordinates"
        return None
    if not isinstance(segmentation, dict):
        return "segmentation must be a list of polygons or an RLE dict"
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if size is None or counts is None:
        return "RLE segmentation needs 'size' and 'counts'"
    if not isinstance(size, list) or size != [height, width]:
        return (f"RLE size {size} does not match the image size "
                f"[height, width] = [{height}, {width}]")
    if isinstance(counts, str):
        return None
    if compressed_rle_only or not isinstance(counts, list) or not all(map(is_int, counts)):
        return "RLE counts must be a string (compressed RLE)" + (
            "" if compressed_rle_only else " or a list of integers")
    if sum(counts) != height * width:
        return f"uncompressed RLE counts cover {sum(counts)} pixels, the image has {height * width}"
    return None


def _check_unique_ids(path, entries: list, kind: str) -> None:
    seen = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise AnnotationError(path, f"entry must be an object, got {type(entry).__name__}",
                                  f"{kind} at index {index}")
        entry_id = entry.get("id")
        if not is_int(entry_id):
            raise AnnotationError(path, f"missing or non-integer 'id' ({entry_id!r})",
                                  f"{kind} at index {index}")
        if entry_id in seen:
            raise AnnotationError(path, "duplicate id", f"{kind} id {entry_id}")
        seen.add(entry_id)


def _check_categories(path, categories: list) -> None:
    _check_unique_ids(path, categories, "category")
    names = set()
    for category in categories:
        name = category.get("name")
        if not isinstance(name, str):
            raise AnnotationError(path, "missing or non-string 'name'",
                                  f"category id {category['id']}")
        if name in names:
            raise AnnotationError(path, f"duplicate category name {name!r}",
                                  f"category id {category['id']}")
        names.add(name)


def _check_images(path, images: list) -> None:
    _check_unique_ids(path, images, "image")
    for image in images:
        item = f"image id {image['id']}"
        if not isinstance(image.get("file_name"), str):
            raise AnnotationError(path, "missing or non-string 'file_name'", item)
        for key in ("width", "height"):
            if not is_int(image.get(key)) or image[key] <= 0:
                raise AnnotationError(path, f"'{key}' must be a positive integer", item)


def _check_annotations(path, data: dict) -> None:
    annotations = data["annotations"]
    _check_unique_ids(path, annotations, "annotation")
    images = {image["id"]: image for image in data["images"]}
    category_ids = {category["id"] for category in data["categories"]}
    for ann in annotations:
        item = f"annotation id {ann['id']}"
        missing = [key for key in _ANNOTATION_KEYS if key not in ann]
        if missing:
            raise AnnotationError(path, f"missing keys {missing}", item)
        image = images.get(ann["image_id"])
        if image is None:
            raise AnnotationError(path, f"image_id {ann['image_id']!r} is not in 'images'", item)
        if ann["category_id"] not in category_ids:
            raise AnnotationError(
                path, f"category_id {ann['category_id']!r} is not in 'categories'", item)
        if ann["iscrowd"] not in (0, 1):
            raise AnnotationError(path, f"iscrowd must be 0 or 1, got {ann['iscrowd']!r}", item)
        if not is_number(ann["area"]) or ann["area"] < 0:
            raise AnnotationError(
                path, f"area must be a non-negative number, got {ann['area']!r}", item)
        problem = bbox_problem(ann["bbox"], image["width"], image["height"])
        if problem is None and "segmentation" in ann:
            problem = segmentation_problem(ann["segmentation"], image["width"], image["height"])
        if problem:
            raise AnnotationError(path, problem, item)


def validate_coco_dataset(data: Any, path: str | os.PathLike) -> None:
    """Raise ``AnnotationError`` unless ``data`` is a usable COCO instances dataset."""
    if not isinstance(data, dict):
        raise AnnotationError(path, f"expected a JSON object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise AnnotationError(path, f"missing key {key!r} (a list)")
    _check_categories(path, data["categories"])
    _check_images(path, data["images"])
    _check_annotations(path, data)


def load_coco(path: str | os.PathLike) -> COCO:
    """Read, validate and index a COCO instances file."""
    data = read_json(path)
    validate_coco_dataset(data, path)
    return build_coco(data)
