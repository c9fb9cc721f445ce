"""Partially supervised instance segmentation data: COCO-format datasets and class splits."""

from maskx.data.categories import CategoryMap
from maskx.data.coco import CocoInstanceDataset, coco_layout
from maskx.data.collate import collate_detection
from maskx.data.errors import AnnotationError
from maskx.data.sampler import SeededSampler
from maskx.data.splits import (
    COCO_CATEGORIES,
    COCO_CATEGORY_IDS,
    NONVOC_CATEGORY_IDS,
    VOC_CATEGORY_IDS,
    coco_random_splits,
    resolve_split,
    split_names,
)
from maskx.data.synthetic import generate_dataset
from maskx.data.transforms import Compose, RandomHorizontalFlip, Resize, train_transforms
from maskx.data.validation import load_coco

__all__ = [
    "AnnotationError",
    "COCO_CATEGORIES",
    "COCO_CATEGORY_IDS",
    "CategoryMap",
    "CocoInstanceDataset",
    "Compose",
    "NONVOC_CATEGORY_IDS",
    "RandomHorizontalFlip",
    "Resize",
    "SeededSampler",
    "VOC_CATEGORY_IDS",
    "coco_layout",
    "coco_random_splits",
    "collate_detection",
    "generate_dataset",
    "load_coco",
    "resolve_split",
    "split_names",
    "train_transforms",
]
