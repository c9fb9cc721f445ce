import json
from itertools import combinations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskx.data.synthetic import (
    SHAPES,
    SYNTHETIC_CATEGORIES,
    SceneConfig,
    generate_dataset,
    render_scene,
)
from maskx.data.validation import load_coco

GRID = np.mgrid[-1.1:1.1:96j, -1.1:1.1:96j]  # y, x


def _shape(name: str) -> np.ndarray:
    yy, xx = GRID
    return SHAPES[name](xx, yy)


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max(), ys.max()


def _point(name: str, x: float, y: float) -> bool:
    return bool(SHAPES[name](np.array([x]), np.array([y]))[0])


def test_at_least_20_classes_with_distinct_shapes():
    assert len(SHAPES) == len(SYNTHETIC_CATEGORIES) >= 20
    masks = {name: _shape(name) for name in SHAPES}
    for name, mask in masks.items():
        assert 0.15 < mask.mean() < 0.85, name
    for (a, mask_a), (b, mask_b) in combinations(masks.items(), 2):
        iou = (mask_a & mask_b).sum() / (mask_a | mask_b).sum()
        assert iou < 0.85, (a, b, iou)


def test_look_alike_shapes_share_their_box_but_not_their_mask():
    for family in (["disk", "ring", "button"], ["square", "square_frame", "window"],
                   ["letter_c", "pacman"]):
        assert len({_tight_box(_shape(name)) for name in family}) == 1, family
        assert len({_shape(name).sum() for name in family}) == len(family), family
    assert _point("disk", 0, 0) and not _point("ring", 0, 0)
    assert _point("ring", 0.8, 0) and not _point("letter_c", 0.8, 0)
    assert _point("letter_c", -0.8, 0) and not _point("pacman", 0.8, 0)
    assert _point("square", 0, 0) and not _point("square_frame", 0, 0)
    assert _point("window", 0, 0) and not _point("window", 0.45, 0.45)
    assert not _point("button", 0.38, 0.38) and not _point("gear", 0, 0)


def _scenes(count: int):
    return [render_scene(np.random.default_rng([5, i])) for i in range(count)]


def test_scenes_cover_classes_sizes_and_occlusion():
    scenes = _scenes(40)
    seen = {cat for scene in scenes for cat in scene.category_ids}
    assert seen == {cat_id for cat_id, _ in SYNTHETIC_CATEGORIES}
    counts = [len(scene.category_ids) for scene in scenes]
    assert min(counts) >= 1 and np.mean(counts) >= 3
    areas = np.concatenate([scene.masks.sum(axis=(0, 1)) for scene in scenes])
    # COCO's small (< 32^2) and large (> 96^2) instances both occur.
    assert areas.min() < 32**2 and areas.max() > 96**2
    assert areas.min() >= SceneConfig().min_visible_pixels
    overlapping_boxes = 0
    for scene in scenes:
        masks = scene.masks.astype(bool)
        # Visible masks never overlap: each pixel shows one object at most.
        assert masks.sum(axis=2).max() <= 1
        boxes = [_tight_box(masks[..., k]) for k in range(masks.shape[2])]
        for (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) in combinations(boxes, 2):
            overlapping_boxes += ax0 <= bx1 and bx0 <= ax1 and ay0 <= by1 and by0 <= ay1
    assert overlapping_boxes > 10


def test_images_are_textured_and_within_the_size_range():
    config = SceneConfig()
    for scene in _scenes(5):
        height, width, channels = scene.image.shape
        assert channels == 3
        assert config.min_image_size <= height <= config.max_image_size
        assert config.min_image_size <= width <= config.max_image_size
        background = scene.image[scene.masks.sum(axis=2) == 0].astype(np.int64)
        assert background.std(axis=0).min() > 5
        colours = background[:, 0] << 16 | background[:, 1] << 8 | background[:, 2]
        assert len(np.unique(colours)) > 1000


def test_generated_files_are_valid_coco(synthetic_root):
    for subset, num_images in (("train", 6), ("val", 5)):
        path = synthetic_root / "annotations" / f"instances_{subset}.json"
        coco = load_coco(path)
        assert len(coco.imgs) == num_images
        categories = [(c["id"], c["name"]) for c in coco.dataset["categories"]]
        assert categories == list(SYNTHETIC_CATEGORIES)
        for image in coco.imgs.values():
            assert (synthetic_root / subset / image["file_name"]).is_file()
        for ann in coco.anns.values():
            rle = ann["segmentation"]
            assert isinstance(rle["counts"], str)
            assert mask_utils.area(rle) == ann["area"] > 0
            assert mask_utils.toBbox(rle).tolist() == ann["bbox"]


def test_generation_is_deterministic_and_per_image(tmp_path):
    generate_dataset(tmp_path / "a", num_train=3, num_val=1, seed=4)
    generate_dataset(tmp_path / "b", num_train=3, num_val=1, seed=4)
    generate_dataset(tmp_path / "c", num_train=2, num_val=0, seed=4)
    generate_dataset(tmp_path / "d", num_train=3, num_val=1, seed=5)
    def read(run: str, name: str) -> bytes:
        return (tmp_path / run / name).read_bytes()

    for subset in ("train", "val"):
        name = f"annotations/instances_{subset}.json"
        assert read("a", name) == read("b", name)
    for image in ("000001.png", "000002.png", "000003.png"):
        assert read("a", f"train/{image}") == read("b", f"train/{image}")
    # Image k does not depend on how many images were asked for.
    for image in ("000001.png", "000002.png"):
        assert read("a", f"train/{image}") == read("c", f"train/{image}")
    assert read("a", "train/000001.png") != read("d", "train/000001.png")
    # Train and val draw from different streams.
    assert read("a", "train/000001.png") != read("a", "val/000001.png")
    info = json.loads((tmp_path / "a/annotations/instances_train.json").read_text())["info"]
    assert info["seed"] == 4 and info["version"] == "1"


@pytest.mark.parametrize("kwargs", [{"num_train": -1, "num_val": 1, "seed": 0},
                                    {"num_train": 1, "num_val": 1, "seed": -2}])
def test_bad_generator_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_dataset(tmp_path, **kwargs)
