"""The synthetic benchmark: shape families, figure-ground ambiguity, COCO-format output."""

from maskx.data.synthetic.categories import (
    CATEGORY_SETS,
    COMPOSED_SET,
    FAMILIES_SET,
    FAMILY_PATTERNS,
    SYNTHETIC_A18B6_SPLIT_A,
    SYNTHETIC_CATEGORIES,
    SYNTHETIC_COMPOSED_SPLIT_A,
    SYNTHETIC_COMPOSED_UNSEEN_SPLIT_A,
    SYNTHETIC_DISJOINT_SPLIT_A,
    SYNTHETIC_SPLIT_A,
    SYNTHETIC_SPLITS,
    SYNTHETIC_SUPERCATEGORIES,
    CategorySet,
    category_set,
)
from maskx.data.synthetic.generator import (
    SYNTHETIC_VERSION,
    SceneConfig,
    generate_dataset,
    render_scene,
)
from maskx.data.synthetic.shapes import FAMILIES, SHAPES

__all__ = [
    "CATEGORY_SETS",
    "COMPOSED_SET",
    "FAMILIES",
    "FAMILIES_SET",
    "FAMILY_PATTERNS",
    "SHAPES",
    "SYNTHETIC_A18B6_SPLIT_A",
    "SYNTHETIC_CATEGORIES",
    "SYNTHETIC_COMPOSED_SPLIT_A",
    "SYNTHETIC_COMPOSED_UNSEEN_SPLIT_A",
    "SYNTHETIC_DISJOINT_SPLIT_A",
    "SYNTHETIC_SPLITS",
    "SYNTHETIC_SPLIT_A",
    "SYNTHETIC_SUPERCATEGORIES",
    "SYNTHETIC_VERSION",
    "CategorySet",
    "SceneConfig",
    "category_set",
    "generate_dataset",
    "render_scene",
]
