"""The synthetic partially supervised benchmark: scene rendering and COCO-format output.

Design (version 2, fixed before any method is compared on it): images of 256..320 px a
side; 2 to 8 objects each, classes drawn uniformly from a category set of 24 shapes in 6
families of 4 (``categories.CATEGORY_SETS``: ``families``, the default, or ``composed``).
The members of a family share a base outline and a surface pattern kind and differ in a
detail that changes the mask.
Backgrounds are patchworks of the same pattern kinds, and each object's mean colour lies
a set distance (``SceneConfig.contrast``) from the mean colour of what it covers, with a
softened edge (``SceneConfig.edge_softness``): objects are easy to find, but their exact
outline is not always readable from appearance alone, so knowing the class's shape helps.

Object diameter is log-uniform from 12 px to 60% of the shorter image side (COCO small,
medium and large all occur), with mild rotation and aspect change that keep the classes
apart; objects are pasted back to front, so later ones occlude earlier ones and every
mask is what stays visible. A placement is retried when it would leave any object
(itself included) with less than half its area or fewer than 24 pixels visible, so every
painted object is annotated and recognisable.

Every image comes from its own random stream ``(seed, subset, index)``: the output is
deterministic for a seed, and image k is the same whatever the number of images asked.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from pycocotools import mask as mask_utils

from maskx.data.synthetic.categories import category_set
from maskx.data.synthetic.textures import background, colour_at_distance, grime, surface

SYNTHETIC_VERSION = 2
SUBSETS = ("train", "val")


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Knobs of the scene sampler. The defaults are the benchmark.

    ``contrast``, ``edge_softness``, ``pattern_amplitude`` and ``background_patterns``
    set how well appearance alone gives an object away:

    - ``contrast``: range of the RGB distance (channels in [0, 1], so at most sqrt(3))
      between an object's mean colour and the mean colour of the pixels it covers, drawn
      uniformly per object. Near 0 an object differs from what it covers only in its
      pattern. The default was set with a detector trained from scratch on a separate
      draw of the benchmark (never its validation images): at (0.12, 0.4) it learned
      nothing in 4000 iterations (box AP 0.3), at (0.3, 0.8) it reached 27.
    - ``edge_softness``: largest standard deviation, in pixels, of the Gaussian blur of
      an object's edge, drawn uniformly per object from [0, edge_softness]. The mask is
      the unblurred shape.
    - ``pattern_amplitude``: range of the RGB amplitude of the surface patterns.
    - ``background_patterns``: background patches wear the objects' pattern kinds too
      (False: plain patches, so that a pattern marks an object).

    ``categories`` names the category set the objects are drawn from.
    """

    min_image_size: int = 256
    max_image_size: int = 320
    min_objects: int = 2
    max_objects: int = 8
    min_object_size: float = 12.0
    max_object_fraction: float = 0.6
    max_rotation_degrees: float = 20.0
    # Small enough that the proportions that tell family members apart (thin_plus from
    # plus, trapezoid from triangle) stay clear.
    max_aspect: float = 1.2
    min_visible_fraction: float = 0.5
    min_visible_pixels: int = 24
    placement_tries: int = 10
    contrast: tuple[float, float] = (0.3, 0.8)
    edge_softness: float = 1.0
    pattern_amplitude: tuple[float, float] = (0.15, 0.35)
    background_patterns: bool = True
    categories: str = "families"


@dataclasses.dataclass
class Scene:
    """One rendered image and its instances, listed back to front."""

    image: np.ndarray  # H x W x 3 uint8
    category_ids: list[int]
    masks: np.ndarray  # H x W x K uint8 (Fortran order), visible part of each instance


def _rasterise(shape, rng: np.random.Generator, config: SceneConfig,
               height: int, width: int):
    """Sample the pose of one object; return its mask on its own window and the window."""
    max_size = config.max_object_fraction * min(height, width)
    size = np.exp(rng.uniform(np.log(config.min_object_size), np.log(max_size)))
    aspect = np.exp(rng.uniform(-np.log(config.max_aspect), np.log(config.max_aspect)))
    angle = np.deg2rad(rng.uniform(-config.max_rotation_degrees, config.max_rotation_degrees))
    semi_x, semi_y = size / 2 * np.sqrt(aspect), size / 2 / np.sqrt(aspect)
    # Centres may lie near the border: truncated objects are part of the benchmark.
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    reach = max(semi_x, semi_y) * np.sqrt(2) + 1
    x0, y0 = int(np.floor(cx - reach)), int(np.floor(cy - reach))
    x1, y1 = int(np.ceil(cx + reach)), int(np.ceil(cy + reach))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    cos, sin = np.cos(angle), np.sin(angle)
    u = (cos * dx + sin * dy) / semi_x
    v = (-sin * dx + cos * dy) / semi_y
    return shape(u, v), (x0, y0, x1, y1)


def _soft_alpha(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Opacity [h, w] in [0, 1] of a binary mask whose edge is blurred by ``sigma`` px."""
    # PIL blurs 8-bit images in C; 8 bits of opacity are plenty under the final noise.
    opaque = Image.fromarray(mask.astype(np.uint8) * 255)
    blurred = opaque.filter(ImageFilter.GaussianBlur(sigma))
    return np.asarray(blurred, dtype=np.float32) * np.float32(1 / 255)


def render_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig()) -> Scene:
    """One scene drawn from ``rng``: background, objects back to front, visible masks."""
    classes = category_set(config.categories)
    height = int(rng.integers(config.min_image_size, config.max_image_size + 1))
    width = int(rng.integers(config.min_image_size, config.max_image_size + 1))
    image = background(rng, height, width, config.background_patterns)
    owner = np.full((height, width), -1, dtype=np.int32)
    full_areas: list[int] = []
    category_ids: list[int] = []
    for _ in range(int(rng.integers(config.min_objects, config.max_objects + 1))):
        category_id, name = classes.categories[rng.integers(len(classes.categories))]
        for _ in range(config.placement_tries):
            local, (x0, y0, x1, y1) = _rasterise(classes.shapes[name], rng, config, height, width)
            full_area = int(local.sum())
            # Crop the object's window to the image.
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            if full_area == 0 or cx0 >= cx1 or cy0 >= cy1:
                continue
            local = local[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            region = owner[cy0:cy1, cx0:cx1]
            k = len(category_ids)
            visible = np.bincount(owner[owner >= 0], minlength=k).astype(np.int64)
            covered = region[local]
            visible -= np.bincount(covered[covered >= 0], minlength=k)
            needed = np.maximum(
                config.min_visible_fraction * np.array(full_areas + [full_area]),
                config.min_visible_pixels,
            )
            if np.any(np.append(visible, np.count_nonzero(local)) < needed):
                continue
            region[local] = k
            window = image[:, cy0:cy1, cx0:cx1]
            contrast = rng.uniform(*config.contrast)
            colour = colour_at_distance(rng, window[:, local].mean(axis=1), contrast)
            pattern_kind = classes.patterns[classes.supercategories[name]]
            texture = surface(rng, pattern_kind, cy1 - cy0, cx1 - cx0, colour, config.pattern_amplitude)
            alpha = _soft_alpha(local, rng.uniform(0.0, config.edge_softness))
            window += alpha * (texture - window)
            full_areas.append(full_area)
            category_ids.append(int(category_id))
            break
    image += grime(rng, height, width)
    pixels = (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    # Built as [K, W, H] so that the H x W x K view is Fortran-ordered, as RLE encoding wants.
    ids = np.arange(len(category_ids), dtype=owner.dtype)[:, None, None]
    masks = (np.ascontiguousarray(owner.T)[None] == ids).astype(np.uint8).transpose(2, 1, 0)
    return Scene(np.ascontiguousarray(pixels.transpose(1, 2, 0)), category_ids, masks)


def _encode(masks: np.ndarray) -> list[dict]:
    rles = mask_utils.encode(masks)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _write_subset(out_dir: Path, subset: str, num_images: int, seed: int,
                  config: SceneConfig) -> dict:
    image_dir = out_dir / subset
    image_dir.mkdir(parents=True, exist_ok=True)
    classes = category_set(config.categories)
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, SUBSETS.index(subset), index])
        scene = render_scene(rng, config)
        image_id = index + 1
        file_name = f"{image_id:06d}.png"
        Image.fromarray(scene.image).save(image_dir / file_name, compress_level=1)
        height, width = scene.image.shape[:2]
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        if not scene.category_ids:
            continue
        rles = _encode(scene.masks)
        boxes = mask_utils.toBbox(rles)
        areas = mask_utils.area(rles)
        for category_id, rle, box, area in zip(scene.category_ids, rles, boxes, areas):
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_id,
                "segmentation": rle,
                "area": float(area),
                "bbox": [float(v) for v in box],
                "iscrowd": 0,
            })
    dataset = {
        "info": {
            "description": "maskx synthetic partially supervised instance segmentation",
            "version": str(SYNTHETIC_VERSION),
            "seed": seed,
            "subset": subset,
            "scene_config": dataclasses.asdict(config),
        },
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": cat_id, "name": name, "supercategory": classes.supercategories[name]}
            for cat_id, name in classes.categories
        ],
    }
    annotation_dir = out_dir / "annotations"
    annotation_dir.mkdir(parents=True, exist_ok=True)
    with open(annotation_dir / f"instances_{subset}.json", "w") as f:
        json.dump(dataset, f)
    return {"images": len(images), "instances": len(annotations)}


def generate_dataset(out_dir: str | os.PathLike, num_train: int, num_val: int, seed: int,
                     config: SceneConfig = SceneConfig()) -> dict[str, dict]:
    """Write the benchmark under ``out_dir`` in COCO layout; return counts per subset.

    ``out_dir/annotations/instances_{train,val}.json`` and ``out_dir/{train,val}/*.png``.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError("image counts must be non-negative")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    if not 0 < config.min_image_size <= config.max_image_size:
        raise ValueError("need 0 < min_image_size <= max_image_size")
    if config.min_object_size >= config.max_object_fraction * config.min_image_size:
        raise ValueError("images are too small for the smallest objects")
    if not 0 <= config.contrast[0] <= config.contrast[1] <= np.sqrt(3):
        raise ValueError("need 0 <= contrast[0] <= contrast[1] <= sqrt(3)")
    if config.edge_softness < 0:
        raise ValueError("edge_softness must be non-negative")
    category_set(config.categories)
    out_dir = Path(out_dir)
    return {
        "train": _write_subset(out_dir, "train", num_train, seed, config),
        "val": _write_subset(out_dir, "val", num_val, seed, config),
    }
