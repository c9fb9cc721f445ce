"""Bootstrap intervals of COCO AP: exact agreement with COCOeval, repeated images, pairing."""

import copy
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from maskx.data import coco_layout, resolve_split
from maskx.data.coco_api import build_coco, quiet
from maskx.evaluation import (
    BOOTSTRAP_METRICS,
    SplitEvaluator,
    average_precision,
    bootstrap,
    draw_resamples,
    match_images,
    paired_difference,
)
from maskx.evaluation.bootstrap import _true_positives_needed

IOU_TYPES = ("bbox", "segm")
# The hand-made scenes use categories 1-5; category 6 has no ground truth.
SCENE_SPLIT = ([1, 2, 3], [4, 5, 6])


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _random_shape(rng, height: int, width: int) -> np.ndarray:
    """A rectangle or a triangle (the lower-left half of a box) somewhere in the image."""
    h, w = int(rng.integers(10, 26)), int(rng.integers(10, 26))
    y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y:y + h, x:x + w] = 1
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:height, 0:width]
        mask &= ((xx - x) * h <= (yy - y) * w).astype(np.uint8)
    return mask


def _scene_dataset(seed: int, num_images: int = 14) -> dict:
    """Shapes of categories 1-5 on small images; some are crowd regions, the last image is
    empty and category 6 never occurs."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        height, width = int(rng.integers(48, 72)), int(rng.integers(48, 72))
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": height,
                       "width": width})
        for _ in range(int(rng.integers(2, 7)) if image_id < num_images else 0):
            rle = _rle(_random_shape(rng, height, width))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": int(rng.integers(1, 6)), "segmentation": rle,
                "area": float(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": int(rng.random() < 0.08),
            })
    categories = [{"id": i, "name": f"shape{i}"} for i in range(1, 7)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _imperfect_results(dataset: dict, seed: int) -> list[dict]:
    """Detections made from the ground truth: shifted masks, misses, wrong classes,
    duplicates and false positives. Scores lie on a 0.1 grid, so that many tie; found
    objects tend to score higher than duplicates and false positives."""
    rng = np.random.default_rng(seed)
    category_ids = [c["id"] for c in dataset["categories"]]

    def result(image_id, category_id, mask, lowest_score, highest_score):
        rle = _rle(mask)
        return {"image_id": image_id, "category_id": int(category_id),
                "score": int(rng.integers(lowest_score, highest_score + 1)) / 10,
                "bbox": [float(v) for v in mask_utils.toBbox(rle)], "segmentation": rle}

    results = []
    for ann in dataset["annotations"]:
        if rng.random() < 0.15:
            continue
        mask = np.roll(mask_utils.decode(ann["segmentation"]), tuple(rng.integers(-2, 3, size=2)),
                       axis=(0, 1))
        category_id = ann["category_id"] if rng.random() < 0.9 else rng.choice(category_ids)
        results.append(result(ann["image_id"], category_id, mask, 4, 9))
        if rng.random() < 0.3:
            results.append(result(ann["image_id"], category_id, mask, 1, 5))
    for image in dataset["images"]:
        if rng.random() < 0.6:
            mask = _random_shape(rng, image["height"], image["width"])
            results.append(result(image["id"], rng.choice(category_ids), mask, 1, 6))
    return results


def _load_results(gt, results, iou_type):
    dropped = "segmentation" if iou_type == "bbox" else "bbox"
    with quiet():
        return gt.loadRes([{k: v for k, v in r.items() if k != dropped}
                           for r in copy.deepcopy(results)])


def _cocoeval_stats(gt, results, iou_type, category_ids) -> list[float]:
    """COCOeval's AP, AP50 and AP75, run the ordinary way."""
    with quiet():
        evaluation = COCOeval(gt, _load_results(gt, results, iou_type), iou_type)
        evaluation.params.catIds = list(category_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats[:3].tolist()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    dataset = _scene_dataset(seed=5)
    path = tmp_path_factory.mktemp("scenes") / "instances_scenes.json"
    path.write_text(json.dumps(dataset))
    return path, dataset, _imperfect_results(dataset, seed=6)


@pytest.fixture(scope="module")
def synthetic(synthetic_root):
    path = coco_layout(synthetic_root, "val")[1]
    dataset = json.loads(path.read_text())
    return path, dataset, _imperfect_results(dataset, seed=7)


def test_test_data_is_neither_trivial_nor_tie_free(scenes):
    _, dataset, results = scenes
    scores = [r["score"] for r in results]
    assert len(set(scores)) < len(scores)
    assert len({r["image_id"] for r in results if r["score"] == scores[0]}) > 1
    gt = build_coco(dataset)
    table = match_images(gt, _load_results(gt, results, "segm"), "segm")
    # Detections on crowd regions, which COCOeval ignores, and unmatched ones.
    assert any(matches.ignored.any() for matches in table.categories.values())
    assert not all(matches.matched.all() for matches in table.categories.values())


@pytest.mark.parametrize("case, split", [("scenes", SCENE_SPLIT), ("synthetic", "synthetic")])
def test_full_set_estimates_equal_cocoeval(case, split, request):
    path, dataset, results = request.getfixturevalue(case)
    evaluator = SplitEvaluator(path, split)
    result = evaluator.evaluate_with_intervals({"model": results}, num_samples=20)
    gt = build_coco(dataset)
    a_ids, b_ids = SCENE_SPLIT if case == "scenes" else resolve_split(split, dataset["categories"])
    subsets = {"A": a_ids, "B": b_ids, "all": [c["id"] for c in dataset["categories"]]}
    for subset, ids in subsets.items():
        for iou_type in IOU_TYPES:
            expected = _cocoeval_stats(gt, results, iou_type, ids)
            ours = result.intervals["model"][subset][iou_type]
            assert [ours[m]["estimate"] for m in BOOTSTRAP_METRICS] == pytest.approx(
                expected, abs=1e-12, rel=0)
            assert 0 < expected[0] < 1
    # Per category: COCOeval restricted to that one category.
    for iou_type in IOU_TYPES:
        per_category = result.per_category["model"][iou_type]
        assert sorted(per_category) == sorted(subsets["all"])
        values = [per_category[i] for i in subsets["all"]]
        expected = [_cocoeval_stats(gt, results, iou_type, [i])[0] for i in subsets["all"]]
        assert values == pytest.approx(expected, abs=1e-12, rel=0)
        assert len(set(np.round(values, 6))) > 1  # categories differ: not one value copied


def test_repeated_images_equal_physically_duplicated_images(scenes):
    """A sample with repeats scores what COCOeval gives when those images really occur
    several times, under new ids in the sample's order (which decides tied scores)."""
    _, dataset, results = scenes
    gt = build_coco(dataset)
    samples = np.array([[4, 0, 4, 7, 2, 2, 2, 9, 1, 4, 6, 3],
                        [8, 8, 5, 1, 0, 3, 3, 9, 2, 7, 1, 6]])
    image_of = {image["id"]: image for image in dataset["images"]}
    for iou_type in IOU_TYPES:
        table = match_images(gt, _load_results(gt, results, iou_type), iou_type)
        for ids in (*SCENE_SPLIT, [1, 2, 3, 4, 5, 6]):
            together = average_precision(table, ids, samples)
            for row, sample in enumerate(samples):
                images, annotations, copies = [], [], []
                for new_id, position in enumerate(sample, start=1):
                    old_id = table.image_ids[position]
                    images.append(dict(image_of[old_id], id=new_id))
                    annotations += [dict(ann, id=len(annotations) + 1 + i, image_id=new_id)
                                    for i, ann in enumerate(
                                        a for a in dataset["annotations"]
                                        if a["image_id"] == old_id)]
                    copies += [dict(r, image_id=new_id) for r in results
                               if r["image_id"] == old_id]
                duplicated = build_coco(dict(dataset, images=images, annotations=annotations))
                expected = _cocoeval_stats(duplicated, copies, iou_type, ids)
                alone = average_precision(table, ids, sample)
                assert [alone[m] for m in BOOTSTRAP_METRICS] == pytest.approx(
                    expected, abs=1e-12, rel=0)
                assert [together[m][row] for m in BOOTSTRAP_METRICS] == pytest.approx(
                    expected, abs=1e-12, rel=0)


def test_identical_lists_differ_by_exactly_zero(scenes):
    path, _, results = scenes
    result = SplitEvaluator(path, SCENE_SPLIT).evaluate_with_intervals(
        {"first": results, "second": copy.deepcopy(results)}, num_samples=50)
    for subset in ("A", "B"):
        for iou_type in IOU_TYPES:
            for metric in BOOTSTRAP_METRICS:
                difference = paired_difference(result, "first", "second")[subset][iou_type][metric]
                assert difference == {"estimate": 0.0, "mean": 0.0, "std": 0.0, "low": 0.0,
                                      "high": 0.0, "fraction_positive": 0.0}


def test_intervals_pairing_and_seeds(scenes):
    path, dataset, results = scenes
    # The same detections ranked at random.
    shuffled = np.random.default_rng(0).permutation([r["score"] for r in results])
    worse = [dict(r, score=float(score)) for r, score in zip(results, shuffled)]
    evaluator = SplitEvaluator(path, SCENE_SPLIT)
    lists = {"good": results, "worse": worse}
    result = evaluator.evaluate_with_intervals(lists, iou_types=["segm"], num_samples=300, seed=3)
    assert result.resamples.shape == (300, len(dataset["images"]))
    for name in lists:
        for subset in ("A", "B", "all"):
            assert set(result.intervals[name][subset]) == {"segm"}
            for metric in BOOTSTRAP_METRICS:
                values = result.intervals[name][subset]["segm"][metric]
                assert values["low"] <= values["estimate"] <= values["high"]
                assert 0 < values["std"] < 0.5 and values["low"] < values["high"]
    # The bootstrap values are the AP of each resample.
    gt = build_coco(dataset)
    table = match_images(gt, _load_results(gt, worse, "segm"), "segm")
    direct = average_precision(table, SCENE_SPLIT[0], result.resamples[:5])
    assert result.samples["worse"]["A"]["segm"]["AP"][:5] == pytest.approx(
        direct["AP"], abs=1e-12, rel=0)
    difference = paired_difference(result, "good", "worse")["all"]["segm"]["AP"]
    good, bad = (result.intervals[n]["all"]["segm"]["AP"]["estimate"] for n in lists)
    assert difference["estimate"] == pytest.approx(good - bad)
    assert difference["estimate"] > 0 and difference["fraction_positive"] > 0.9
    # Paired on the same resamples, the difference varies less than either AP does.
    assert difference["std"] < min(result.intervals[n]["all"]["segm"]["AP"]["std"]
                                   for n in lists)
    assert difference["low"] <= difference["mean"] <= difference["high"]

    again = evaluator.evaluate_with_intervals(lists, iou_types=["segm"], num_samples=300, seed=3)
    assert np.array_equal(again.resamples, result.resamples)
    assert again.intervals == result.intervals
    other = evaluator.evaluate_with_intervals(lists, iou_types=["segm"], num_samples=300, seed=4)
    assert not np.array_equal(other.resamples, result.resamples)
    assert np.array_equal(draw_resamples(len(dataset["images"]), 300, seed=3), result.resamples)


def test_a_subset_without_ground_truth_is_undefined(scenes):
    path, dataset, results = scenes
    # Category 6 never occurs: COCOeval gives -1 for it alone.
    assert _cocoeval_stats(build_coco(dataset), results, "bbox", [6]) == [-1.0] * 3
    result = SplitEvaluator(path, ([6], [1, 2, 3, 4, 5])).evaluate_with_intervals(
        {"model": results, "again": results}, iou_types=["bbox"], num_samples=30)
    for metric in BOOTSTRAP_METRICS:
        assert result.intervals["model"]["A"]["bbox"][metric] == dict.fromkeys(
            ("estimate", "std", "low", "high"), -1.0)
        assert np.all(result.samples["model"]["A"]["bbox"][metric] == -1)
        assert result.intervals["model"]["B"]["bbox"][metric]["estimate"] > 0
    difference = paired_difference(result, "model", "again")["A"]["bbox"]["AP"]
    assert all(np.isnan(value) for value in difference.values())


def test_resamples_missing_every_ground_truth_of_a_category_skip_it(scenes):
    _, dataset, results = scenes
    gt = build_coco(dataset)
    table = match_images(gt, _load_results(gt, results, "bbox"), "bbox")
    # The empty last image alone: no ground truth at all, as COCOeval on that image says.
    empty = len(dataset["images"]) - 1
    assert average_precision(table, [1, 2, 3], [empty, empty]) == dict.fromkeys(
        BOOTSTRAP_METRICS, -1.0)
    # One image: only its categories count.
    only = table.image_ids[0]
    present = sorted({a["category_id"] for a in dataset["annotations"]
                      if a["image_id"] == only and not a["iscrowd"]})
    single = build_coco(dict(dataset, images=[dataset["images"][0]],
                             annotations=[a for a in dataset["annotations"]
                                          if a["image_id"] == only]))
    expected = _cocoeval_stats(single, [r for r in results if r["image_id"] == only], "bbox",
                               [1, 2, 3, 4, 5, 6])
    ours = average_precision(table, [1, 2, 3, 4, 5, 6], [0])
    assert present and [ours[m] for m in BOOTSTRAP_METRICS] == pytest.approx(
        expected, abs=1e-12, rel=0)


def test_default_iou_types_are_those_every_list_carries(scenes):
    path, _, results = scenes
    boxes_only = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    result = SplitEvaluator(path, SCENE_SPLIT).evaluate_with_intervals(
        {"both": results, "boxes": boxes_only}, num_samples=5)
    assert set(result.intervals["both"]["A"]) == set(result.intervals["boxes"]["B"]) == {"bbox"}


@pytest.mark.parametrize("num_samples", [0, -5, 2.5, None])
def test_bad_sample_counts(scenes, num_samples):
    path, _, results = scenes
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        SplitEvaluator(path, SCENE_SPLIT).evaluate_with_intervals({"m": results},
                                                                  num_samples=num_samples)


def test_bad_inputs(scenes):
    path, dataset, results = scenes
    evaluator = SplitEvaluator(path, SCENE_SPLIT)
    with pytest.raises(ValueError, match=r"unknown iou types \['keypoints'\]"):
        evaluator.evaluate_with_intervals({"m": results}, iou_types=["keypoints"])
    with pytest.raises(ValueError, match="no results lists"):
        evaluator.evaluate_with_intervals({})
    boxes_only = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    with pytest.raises(ValueError, match="boxes: results carry no 'segmentation'"):
        evaluator.evaluate_with_intervals({"boxes": boxes_only}, iou_types=["segm"])
    with pytest.raises(ValueError, match="broken: result 0 .* category_id 9 is not"):
        evaluator.evaluate_with_intervals({"m": results, "broken": [dict(results[0],
                                                                         category_id=9)]})
    result = evaluator.evaluate_with_intervals({"m": results}, iou_types=["bbox"],
                                               num_samples=3)
    with pytest.raises(ValueError, match="no results list named 'n'"):
        paired_difference(result, "m", "n")
    gt = build_coco(dataset)
    table = match_images(gt, _load_results(gt, results, "bbox"), "bbox")
    num_images = len(dataset["images"])
    with pytest.raises(ValueError, match=f"image positions outside 0..{num_images - 1}"):
        average_precision(table, [1], [0, num_images])
    with pytest.raises(ValueError, match="no category 7"):
        average_precision(table, [7], [0, 1])
    with pytest.raises(ValueError, match="integer image positions"):
        average_precision(table, [1], [0.5])
    with pytest.raises(ValueError, match="1-D or 2-D"):
        average_precision(table, [1], np.zeros((2, 2, 2), dtype=int))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        bootstrap({"m": {"bbox": table}}, {"A": [1]}, np.zeros(num_images, dtype=int))


def test_true_positives_needed_is_where_searchsorted_lands():
    recall_thresholds = np.linspace(0.0, 1.00, 101)
    counts = np.arange(1, 2001)
    needed = _true_positives_needed(counts, recall_thresholds)
    for count, row in zip(counts, needed):
        recall = np.arange(1, count + 1) / count
        # searchsorted over the recalls of 1..count true positives, plus "none needed".
        expected = np.where(recall_thresholds <= 0, 0,
                            np.searchsorted(recall, recall_thresholds, side="left") + 1)
        assert np.array_equal(row, expected), count
