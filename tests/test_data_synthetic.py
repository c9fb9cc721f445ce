import json
from itertools import combinations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskx import cli
from maskx.data.synthetic import (
    CATEGORY_SETS,
    COMPOSED_SET,
    FAMILIES,
    FAMILY_PATTERNS,
    SHAPES,
    SYNTHETIC_CATEGORIES,
    SYNTHETIC_SUPERCATEGORIES,
    SceneConfig,
    generate_dataset,
    render_scene,
)
from maskx.data.synthetic.textures import PATTERNS, colour_at_distance, pattern
from maskx.data.validation import load_coco


def _raster(name: str, pixels: int, shapes=SHAPES) -> np.ndarray:
    """The canonical shape on a ``pixels``-square grid over [-1.1, 1.1]^2, pixel centres."""
    centres = -1.1 + 2.2 * (np.arange(pixels) + 0.5) / pixels
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    return shapes[name](xx, yy)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max(), ys.max()


def _point(name: str, x: float, y: float, shapes=SHAPES) -> bool:
    return bool(shapes[name](np.array([x]), np.array([y]))[0])


@pytest.mark.parametrize("category_set", CATEGORY_SETS.values(), ids=list(CATEGORY_SETS))
def test_six_families_of_four_are_the_categories_in_order(category_set):
    families = category_set.families
    assert len(families) == 6 and all(len(members) == 4 for members in families.values())
    names = [name for members in families.values() for name in members]
    assert list(category_set.shapes) == names and len(set(names)) == 24
    assert list(category_set.categories) == [(i + 1, name) for i, name in enumerate(names)]
    for family, members in families.items():
        assert {category_set.supercategories[name] for name in members} == {family}
    # One pattern kind per family, each a kind backgrounds use too.
    assert set(category_set.patterns) == set(families)
    assert sorted(category_set.patterns.values()) == sorted(PATTERNS)


def test_the_default_set_is_the_families_set():
    assert SHAPES is CATEGORY_SETS["families"].shapes and FAMILIES is CATEGORY_SETS["families"].families
    assert SYNTHETIC_CATEGORIES == CATEGORY_SETS["families"].categories
    assert SYNTHETIC_SUPERCATEGORIES == CATEGORY_SETS["families"].supercategories
    assert FAMILY_PATTERNS is CATEGORY_SETS["families"].patterns


@pytest.mark.parametrize("category_set", CATEGORY_SETS.values(), ids=list(CATEGORY_SETS))
@pytest.mark.parametrize("pixels", [96, 30])
def test_family_members_differ_but_resemble_each_other(pixels, category_set):
    # 30 px is about the smallest size at which a detector should tell members apart.
    shapes, supercategories = category_set.shapes, category_set.supercategories
    masks = {name: _raster(name, pixels, shapes) for name in shapes}
    for name, mask in masks.items():
        assert 0.15 < mask.mean() < 0.85, name
    within, across = {}, {}
    for a, b in combinations(shapes, 2):
        iou = _iou(masks[a], masks[b])
        family_a, family_b = supercategories[a], supercategories[b]
        if family_a == family_b:
            assert iou < 0.8, (a, b, iou)
            within.setdefault(family_a, []).append(iou)
        else:
            assert iou < 0.9, (a, b, iou)
            across.setdefault(family_a, []).append(iou)
            across.setdefault(family_b, []).append(iou)
    for family in category_set.families:
        assert np.mean(within[family]) > np.mean(across[family]) + 0.1, family


def test_composed_variants_do_the_same_to_every_base():
    from maskx.data.synthetic.composed import BASES, VARIANTS

    shapes = COMPOSED_SET.shapes
    assert VARIANTS == ("plain", "holed", "notched", "split")
    for base, (_, (cx, cy)) in BASES.items():
        plain, holed, notched, split = COMPOSED_SET.families[base]
        assert plain == base
        # The centre is inside the plain outline, in the hole, on the cut.
        assert _point(plain, cx, cy, shapes) and _point(notched, cx - 0.05, cy + 0.05, shapes)
        assert not _point(holed, cx, cy, shapes) and not _point(split, cx, cy, shapes)
        # The notch is the upper-right quadrant; the cut leaves the rest of the axis.
        assert _point(plain, cx + 0.1, cy - 0.1, shapes) and not _point(notched, cx + 0.1, cy - 0.1, shapes)
        assert _point(split, cx, cy + 0.25, shapes) or not _point(plain, cx, cy + 0.25, shapes)
        masks = {name: _raster(name, 96, shapes) for name in (plain, holed, notched, split)}
        for variant in (holed, notched, split):
            # Every variant only removes from its base: a fifth to two fifths of it.
            assert not (masks[variant] & ~masks[plain]).any(), variant
            assert 0.55 < masks[variant].sum() / masks[plain].sum() < 0.8, variant


def test_details_sit_where_they_should():
    assert _point("disk", 0, 0) and not _point("ring", 0, 0) and _point("ring", 0.75, 0)
    assert not _point("pacman", 0.6, 0) and _point("pacman", -0.6, 0)
    assert not _point("button", 0.4, 0.4) and _point("button", 0, 0)
    assert not _point("square_frame", 0, 0) and _point("window", 0, 0)
    assert not _point("window", 0.45, 0.45) and not _point("notched_square", 0.5, -0.5)
    assert _point("triangle", 0, 0.25) and not _point("holed_triangle", 0, 0.25)
    assert not _point("arrowhead", 0, 0.7) and _point("trapezoid", 0.35, -0.8)
    assert _point("plus", 0.25, 0.8) and not _point("thin_plus", 0.25, 0.8)
    assert _point("latin_cross", 0.8, -0.5) and not _point("plus", 0.8, -0.5)
    assert _point("tee", 0.8, -0.9) and not _point("latin_cross", 0.8, -0.9)
    assert _point("star_6", 0.0, 0.9) and not _point("star_5", 0.0, 0.9)
    assert _point("star_4", 0.6, 0.6) and not _point("holed_star", 0, 0)
    assert _point("letter_e", 0, -0.8) and not _point("letter_h", 0, -0.8)
    assert _point("letter_h", 0, 0) and not _point("letter_u", 0, 0)
    assert _point("letter_u", 0.6, -0.8) and not _point("letter_l", 0.6, -0.8)
    # Bar letters share their box, so only the mask tells them apart.
    assert len({_tight_box(_raster(name, 96)) for name in FAMILIES["bars"]}) == 1


@pytest.mark.parametrize("kind", PATTERNS)
def test_patterns_stay_in_range_and_vary(kind):
    values = pattern(kind, np.random.default_rng(0), 40, 50)
    assert values.shape == (40, 50) and values.dtype == np.float32
    assert 0 <= values.min() and values.max() <= 1 and values.std() > 0.1


def test_colour_at_distance_keeps_to_the_cube():
    rng = np.random.default_rng(0)
    for reference in ([0.5, 0.5, 0.5], [0.0, 1.0, 0.1]):
        colour = colour_at_distance(rng, np.array(reference), 0.3)
        assert np.all((0 <= colour) & (colour <= 1))
        assert np.linalg.norm(colour - reference) == pytest.approx(0.3, abs=0.03)


def _scenes(count: int, config: SceneConfig = SceneConfig()):
    return [render_scene(np.random.default_rng([5, i]), config) for i in range(count)]


def test_composed_scenes_draw_from_the_composed_set(tmp_path):
    scenes = _scenes(40, SceneConfig(categories="composed"))
    assert {cat for scene in scenes for cat in scene.category_ids} == {i for i, _ in COMPOSED_SET.categories}
    generate_dataset(tmp_path, num_train=2, num_val=0, seed=0, config=SceneConfig(categories="composed"))
    dataset = json.loads((tmp_path / "annotations/instances_train.json").read_text())
    assert [(c["id"], c["name"], c["supercategory"]) for c in dataset["categories"]] == [
        (i, name, COMPOSED_SET.supercategories[name]) for i, name in COMPOSED_SET.categories]
    assert dataset["info"]["scene_config"]["categories"] == "composed"
    # Same seed, other classes: the set changes what is drawn.
    assert _scenes(1, SceneConfig(categories="composed"))[0].image.tobytes() != _scenes(1)[0].image.tobytes()


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


def _object_to_surround_distances(scenes) -> list[float]:
    """Per instance of at least 200 px, the RGB distance between its mean colour and that of
    the background in a 3 px band around it (in [0, 1] units)."""
    distances = []
    for scene in scenes:
        image = scene.image.astype(np.float64) / 255
        occupied = scene.masks.any(axis=2)
        for k in range(scene.masks.shape[2]):
            mask = scene.masks[..., k].astype(bool)
            if mask.sum() < 200:
                continue
            band = mask.copy()
            for _ in range(3):
                band |= np.roll(band, 1, 0) | np.roll(band, -1, 0)
                band |= np.roll(band, 1, 1) | np.roll(band, -1, 1)
            band &= ~occupied
            if band.sum() >= 50:
                distances.append(np.linalg.norm(image[mask].mean(0) - image[band].mean(0)))
    return distances


def test_contrast_knob_sets_how_far_objects_stand_out():
    faint = _object_to_surround_distances(_scenes(8, SceneConfig(contrast=(0.0, 0.05))))
    bold = _object_to_surround_distances(_scenes(8, SceneConfig(contrast=(0.5, 0.6))))
    assert len(faint) > 10 and len(bold) > 10
    assert np.median(faint) < 0.15 < 0.3 < np.median(bold)


def test_generated_files_are_valid_coco(synthetic_root):
    for subset, num_images in (("train", 6), ("val", 5)):
        path = synthetic_root / "annotations" / f"instances_{subset}.json"
        coco = load_coco(path)
        assert len(coco.imgs) == num_images
        categories = [(c["id"], c["name"]) for c in coco.dataset["categories"]]
        assert categories == list(SYNTHETIC_CATEGORIES)
        for category in coco.dataset["categories"]:
            assert category["supercategory"] == SYNTHETIC_SUPERCATEGORIES[category["name"]]
        for image in coco.imgs.values():
            assert (synthetic_root / subset / image["file_name"]).is_file()
        assert coco.anns
        for ann in coco.anns.values():
            rle = ann["segmentation"]
            assert isinstance(rle["counts"], str)
            assert mask_utils.area(rle) == ann["area"] >= SceneConfig().min_visible_pixels
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
    assert info["seed"] == 4 and info["version"] == "2"
    assert info["scene_config"]["contrast"] == list(SceneConfig().contrast)
    assert info["scene_config"]["edge_softness"] == SceneConfig().edge_softness


@pytest.mark.parametrize("kwargs", [
    {"num_train": -1, "num_val": 1, "seed": 0},
    {"num_train": 1, "num_val": 1, "seed": -2},
    {"num_train": 1, "num_val": 1, "seed": 0, "config": SceneConfig(contrast=(0.4, 0.2))},
    {"num_train": 1, "num_val": 1, "seed": 0, "config": SceneConfig(contrast=(-0.1, 0.2))},
    {"num_train": 1, "num_val": 1, "seed": 0, "config": SceneConfig(contrast=(0.1, 2.0))},
    {"num_train": 1, "num_val": 1, "seed": 0, "config": SceneConfig(edge_softness=-1.0)},
    {"num_train": 1, "num_val": 1, "seed": 0, "config": SceneConfig(categories="animals")},
])
def test_bad_generator_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_dataset(tmp_path, **kwargs)


def test_generate_data_command_passes_the_knobs_on(tmp_path, capsys):
    args = ["generate-data", "--out", str(tmp_path), "--num-train", "1", "--num-val", "0"]
    assert cli.main(args + ["--contrast", "0.2", "0.3", "--edge-softness", "0.5"]) == 0
    info = json.loads((tmp_path / "annotations/instances_train.json").read_text())["info"]
    assert info["scene_config"]["contrast"] == [0.2, 0.3]
    assert info["scene_config"]["edge_softness"] == 0.5
    assert cli.main(args + ["--contrast", "0.3", "0.2"]) == 2
    assert "contrast" in capsys.readouterr().err
    assert cli.main(args + ["--categories", "composed"]) == 0
    info = json.loads((tmp_path / "annotations/instances_train.json").read_text())["info"]
    assert info["scene_config"]["categories"] == "composed"
    assert "synthetic_composed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args + ["--categories", "animals"])
    assert exit_info.value.code == 2


def test_generate_data_command_offers_every_category_set():
    import argparse

    subparsers = argparse.ArgumentParser().add_subparsers()
    parser = cli.add_generate_data_parser(subparsers)
    choices = next(a.choices for a in parser._actions if a.dest == "categories")
    assert tuple(choices) == tuple(CATEGORY_SETS)


def test_pattern_knobs():
    from maskx.data.synthetic.textures import background, surface

    def roughness(image):  # mean absolute difference between horizontal neighbours
        return float(np.abs(np.diff(image, axis=2)).mean())

    plain = [roughness(background(np.random.default_rng(s), 96, 96, patterned=False)) for s in range(6)]
    patterned = [roughness(background(np.random.default_rng(s), 96, 96, patterned=True)) for s in range(6)]
    assert np.mean(plain) < 0.7 * np.mean(patterned)
    colour = np.array([0.5, 0.4, 0.6], dtype=np.float32)
    weak = surface(np.random.default_rng(1), "checker", 40, 40, colour, amplitude=(0.1, 0.1))
    strong = surface(np.random.default_rng(1), "checker", 40, 40, colour, amplitude=(0.5, 0.5))
    mean = colour[:, None, None]
    assert (strong - mean).std() == pytest.approx(5 * (weak - mean).std(), rel=1e-4)
    np.testing.assert_allclose(strong.mean(axis=(1, 2)), colour, atol=2e-3)
