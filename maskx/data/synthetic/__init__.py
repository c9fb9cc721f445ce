"""The synthetic benchmark: class-specific shapes, occlusion, COCO-format output."""

from maskx.data.synthetic.categories import SYNTHETIC_CATEGORIES, SYNTHETIC_SPLIT_A
from maskx.data.synthetic.generator import (
    SYNTHETIC_VERSION,
    SceneConfig,
    generate_dataset,
    render_scene,
)
from maskx.data.synthetic.shapes import SHAPES

__all__ = [
    "SHAPES",
    "SYNTHETIC_CATEGORIES",
    "SYNTHETIC_SPLIT_A",
    "SYNTHETIC_VERSION",
    "SceneConfig",
    "generate_dataset",
    "render_scene",
]
