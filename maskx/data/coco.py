"""COCO-format instance segmentation dataset with partial mask supervision.

Works on any COCO instances file and image folder. The standard layouts::

    coco/annotations/instances_train2017.json   coco/train2017/*.jpg
    coco/annotations/instances_val2017.json     coco/val2017/*.jpg
    coco/annotations/instances_train2014.json   coco/train2014/*.jpg
    synthetic/annotations/instances_train.json  synthetic/train/*.png

``coco_layout(root, subset)`` gives the two paths for such a layout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from maskx.data.categories import CategoryMap
from maskx.data.errors import AnnotationError
from maskx.data.splits import resolve_split
from maskx.data.validation import load_coco

Transform = Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]]


def coco_layout(root: str | os.PathLike, subset: str) -> tuple[Path, Path]:
    """``(image_dir, annotation_file)`` of ``subset`` (e.g. ``val2017``) under ``root``."""
    root = Path(root)
    return root / subset, root / "annotations" / f"instances_{subset}.json"


class CocoInstanceDataset(torch.utils.data.Dataset):
    """Items are ``(image, target)`` in torchvision's detection format.

    ``image`` is a float tensor [3, H, W] in [0, 1]. ``target`` holds ``boxes`` (float
    [N, 4], x1 y1 x2 y2 in pixels), ``labels`` (int64 [N], contiguous 1..C, see
    ``category_map``), ``masks`` (uint8 [N, H, W]), ``has_mask`` (bool [N]), ``image_id``
    (int, the COCO image id), ``iscrowd`` (int64 [N]) and ``area`` (float [N]).

    ``split`` chooses which classes keep their masks (set A): a split name resolved against
    this file's categories (see ``maskx.data.splits``), an iterable of category ids, or
    ``None`` for full supervision. Instances of the other classes (set B) keep boxes and
    labels, with ``has_mask`` False and an all-zero mask that is never decoded.

    With ``train=True`` crowd annotations and zero-size boxes are dropped and images left
    without annotations are skipped (Detectron's convention); with ``train=False`` every
    image and annotation is kept, crowd ones flagged by ``iscrowd``, as COCOeval sees them.

    The annotation file is validated and every image file checked (and with
    ``verify_images`` its size read from the header) when the dataset is built.
    """

    def __init__(
        self,
        image_dir: str | os.PathLike,
        annotation_file: str | os.PathLike,
        *,
        split: str | Iterable[int] | None = None,
        train: bool = True,
        transforms: Transform | None = None,
        verify_images: bool = True,
    ):
        self.image_dir = Path(image_dir)
        self.annotation_file = Path(annotation_file)
        self.train = train
        self.transforms = transforms
        self.coco = load_coco(annotation_file)
        categories = self.coco.dataset["categories"]
        self.category_map = CategoryMap(categories)
        self.mask_category_ids = self._mask_category_ids(split, categories)
        self._records = self._select_annotations()
        self._check_image_files(verify_images)

    @staticmethod
    def _mask_category_ids(split, categories) -> frozenset[int]:
        if split is None:
            return frozenset(int(c["id"]) for c in categories)
        if isinstance(split, str):
            return frozenset(resolve_split(split, categories)[0])
        ids = frozenset(int(i) for i in split)
        unknown = sorted(ids - {int(c["id"]) for c in categories})
        if unknown:
            raise ValueError(f"split names unknown category ids {unknown}")
        return ids

    def _keep(self, ann: dict) -> bool:
        if not self.train:
            return True
        _, _, w, h = ann["bbox"]
        return not ann["iscrowd"] and w > 0 and h > 0

    def _select_annotations(self) -> list[tuple[dict, list[dict]]]:
        records = []
        for image_id in sorted(self.coco.imgs):
            anns = [ann for ann in self.coco.imgToAnns[image_id] if self._keep(ann)]
            for ann in anns:
                if ann["category_id"] in self.mask_category_ids and "segmentation" not in ann:
                    raise AnnotationError(
                        self.annotation_file,
                        f"no segmentation, but category {ann['category_id']} is in the mask "
                        "set (A) of this split",
                        f"annotation id {ann['id']}",
                    )
            if anns or not self.train:
                records.append((self.coco.imgs[image_id], anns))
        return records

    def _check_image_files(self, verify_sizes: bool) -> None:
        for info, _ in self._records:
            if verify_sizes:
                self._open_image(info).close()
            elif not (self.image_dir / info["file_name"]).is_file():
                self._image_error(info, "not found")

    def _image_error(self, info: dict, reason: str) -> NoReturn:
        path = self.image_dir / info["file_name"]
        raise AnnotationError(self.annotation_file, f"image file {path} {reason}",
                              f"image id {info['id']}")

    def _open_image(self, info: dict) -> Image.Image:
        """Open an image (PIL reads only the header here) and check its size."""
        try:
            image = Image.open(self.image_dir / info["file_name"])
        except FileNotFoundError:
            self._image_error(info, "not found")
        except OSError as exc:
            self._image_error(info, f"cannot be read ({exc})")
        if image.size != (info["width"], info["height"]):
            image.close()
            self._image_error(info, f"is {image.size[0]}x{image.size[1]}, the annotation says "
                                    f"{info['width']}x{info['height']}")
        return image

    @property
    def image_ids(self) -> list[int]:
        return [info["id"] for info, _ in self._records]

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        info, anns = self._records[index]
        image = self._load_image(info)
        target = self._target(info, anns)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def _load_image(self, info: dict) -> torch.Tensor:
        with self._open_image(info) as image:
            pixels = np.array(image.convert("RGB"))
        return torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)

    def _target(self, info: dict, anns: list[dict]) -> dict:
        height, width = info["height"], info["width"]
        boxes = torch.tensor([ann["bbox"] for ann in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        # Boxes may overhang the image slightly (see validation.BOX_TOLERANCE).
        boxes[:, 0::2].clamp_(0, width)
        boxes[:, 1::2].clamp_(0, height)
        has_mask = torch.tensor(
            [ann["category_id"] in self.mask_category_ids for ann in anns], dtype=torch.bool)
        masks = torch.zeros((len(anns), height, width), dtype=torch.uint8)
        with_mask = has_mask.nonzero().flatten().tolist()
        if with_mask:
            rles = [self.coco.annToRLE(anns[i]) for i in with_mask]
            masks[with_mask] = torch.from_numpy(mask_utils.decode(rles)).permute(2, 0, 1)
        return {
            "boxes": boxes,
            "labels": torch.tensor(
                self.category_map.labels(ann["category_id"] for ann in anns), dtype=torch.int64),
            "masks": masks,
            "has_mask": has_mask,
            "image_id": int(info["id"]),
            "iscrowd": torch.tensor([ann["iscrowd"] for ann in anns], dtype=torch.int64),
            "area": torch.tensor([ann["area"] for ann in anns], dtype=torch.float32),
        }
