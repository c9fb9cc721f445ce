import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from maskx import cli
from maskx.data import AnnotationError, CocoInstanceDataset, coco_layout, resolve_split
from maskx.data.coco_api import quiet
from maskx.evaluation import (
    METRICS,
    SplitEvaluator,
    detections_to_coco_results,
    encode_masks,
    format_metrics_table,
)


@pytest.fixture(scope="module")
def val_file(synthetic_root):
    return coco_layout(synthetic_root, "val")[1]


@pytest.fixture(scope="module")
def evaluator(val_file):
    return SplitEvaluator(val_file, "synthetic")


def _gt_as_results(annotation_file) -> list[dict]:
    data = json.loads(annotation_file.read_text())
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": 1.0, "segmentation": a["segmentation"]} for a in data["annotations"]]


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def test_ground_truth_as_results_scores_one_on_a_and_b(evaluator, val_file):
    metrics = evaluator.evaluate(_gt_as_results(val_file))
    assert set(metrics) == {"A", "B", "all"}
    for subset in metrics.values():
        assert set(subset) == {"bbox", "segm"}
        for values in subset.values():
            assert list(values) == list(METRICS)
            # COCOeval averages per-category values, so 1.0 may come out as 1 - 2e-16.
            assert [values[name] for name in ("AP", "AP50", "AP75")] == pytest.approx([1.0] * 3)
            for name in ("APs", "APm", "APl"):
                assert values[name] == -1.0 or values[name] == pytest.approx(1.0)


def test_detector_outputs_of_the_ground_truth_score_one(synthetic_root, evaluator):
    dataset = CocoInstanceDataset(*coco_layout(synthetic_root, "val"), train=False)
    image_ids, outputs = [], []
    for index in range(len(dataset)):
        _, target = dataset[index]
        image_ids.append(target["image_id"])
        count = len(target["labels"])
        outputs.append({
            "boxes": target["boxes"],
            "labels": target["labels"],
            "scores": torch.linspace(0.9, 0.5, count),
            # Probabilities, as torchvision's MaskRCNN pastes them: [N, 1, H, W].
            "masks": target["masks"][:, None].float() * 0.8 + 0.1,
        })
    results = detections_to_coco_results(image_ids, outputs, dataset.category_map)
    assert len(results) == sum(len(dataset.coco.imgToAnns[i]) for i in image_ids)
    metrics = evaluator.evaluate(results)
    for subset in ("A", "B", "all"):
        for iou_type in ("bbox", "segm"):
            assert metrics[subset][iou_type]["AP"] == pytest.approx(1.0)


def test_empty_results_score_zero(evaluator):
    metrics = evaluator.evaluate([])
    for subset in metrics.values():
        for values in subset.values():
            assert values["AP"] == values["AP50"] == 0.0
            assert all(values[name] in (0.0, -1.0) for name in METRICS)


def _known_case(tmp_path):
    """Class 1 (set A): two objects, detections TP 0.9, FP 0.8, TP 0.7.
    Class 2 (set B): one object found exactly. All objects are medium-sized squares."""
    squares = {1: (10, 10), 2: (60, 10), 3: (10, 60)}
    anns = []
    for ann_id, (category_id, (x, y)) in enumerate(zip((1, 1, 2), squares.values()), start=1):
        anns.append({"id": ann_id, "image_id": 1, "category_id": category_id, "iscrowd": 0,
                     "bbox": [x, y, 40, 40], "area": 1600.0,
                     "segmentation": [[x, y, x + 40, y, x + 40, y + 40, x, y + 40]]})
    gt = {"images": [{"id": 1, "width": 120, "height": 120, "file_name": "x.png"}],
          "annotations": anns,
          "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    path = tmp_path / "known.json"
    path.write_text(json.dumps(gt))

    def detection(category_id, x, y, score):
        mask = np.zeros((120, 120), dtype=np.uint8)
        mask[y:y + 40, x:x + 40] = 1
        return {"image_id": 1, "category_id": category_id, "score": score,
                "bbox": [x, y, 40, 40], "segmentation": _rle(mask)}

    results = [detection(1, 10, 10, 0.9), detection(1, 70, 70, 0.8),
               detection(1, 60, 10, 0.7), detection(2, 10, 60, 0.5)]
    return path, results


def test_known_answer(tmp_path):
    path, results = _known_case(tmp_path)
    metrics = SplitEvaluator(path, "ids:1").evaluate(results, iou_types=["bbox"])
    # 101-point interpolated precision: 1 up to recall 0.5 (51 points), 2/3 after (50).
    expected_a = (51 + 50 * 2 / 3) / 101
    assert metrics["A"]["bbox"]["AP"] == pytest.approx(expected_a)
    assert metrics["A"]["bbox"]["APm"] == pytest.approx(expected_a)
    assert metrics["A"]["bbox"]["APs"] == metrics["A"]["bbox"]["APl"] == -1.0
    assert metrics["B"]["bbox"]["AP"] == pytest.approx(1.0)
    assert metrics["all"]["bbox"]["AP"] == pytest.approx((expected_a + 1) / 2)
    assert set(metrics["A"]) == {"bbox"}


def _direct_cocoeval(gt, results, iou_type, category_ids):
    key = "bbox" if iou_type == "segm" else "segmentation"
    anns = [{k: v for k, v in r.items() if k != key} for r in copy.deepcopy(results)]
    with quiet():
        evaluation = COCOeval(gt, gt.loadRes(anns), iou_type)
        evaluation.params.catIds = category_ids
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats[:6].tolist()


def test_agrees_with_pycocotools_on_imperfect_results(evaluator, val_file):
    rng = np.random.default_rng(0)
    gt = evaluator.gt
    results = []
    for ann in gt.dataset["annotations"]:
        if rng.random() < 0.2:
            continue  # a miss
        image = gt.imgs[ann["image_id"]]
        mask = mask_utils.decode(ann["segmentation"])
        shift = rng.integers(-4, 5, size=2)
        mask = np.roll(mask, tuple(shift), axis=(0, 1))
        if not mask.any():
            continue
        category_id = ann["category_id"] if rng.random() < 0.85 else int(rng.integers(1, 25))
        rle = _rle(mask)
        x, y, w, h = mask_utils.toBbox(rle).tolist()
        results.append({"image_id": ann["image_id"], "category_id": category_id,
                        "score": float(rng.random()), "bbox": [x, y, w, h], "segmentation": rle})
        if rng.random() < 0.3:  # a duplicate with a looser box
            box = [max(0.0, x - 3), max(0.0, y - 3), min(w + 6, image["width"] - max(0.0, x - 3)),
                   min(h + 6, image["height"] - max(0.0, y - 3))]
            results.append(dict(results[-1], bbox=box, score=float(rng.random()) * 0.5))
    metrics = evaluator.evaluate(copy.deepcopy(results))
    a_ids, b_ids = resolve_split("synthetic", gt.dataset["categories"])
    for subset, ids in (("A", a_ids), ("B", b_ids), ("all", sorted(gt.getCatIds()))):
        for iou_type in ("bbox", "segm"):
            ours = [metrics[subset][iou_type][name] for name in METRICS]
            assert ours == pytest.approx(_direct_cocoeval(gt, results, iou_type, ids))
            assert 0 < ours[0] < 1


def test_explicit_split_tuple_and_iou_type_choice(val_file):
    results = _gt_as_results(val_file)
    boxes_only = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    evaluator = SplitEvaluator(val_file, ([1, 2, 3], list(range(4, 25))))
    metrics = evaluator.evaluate(boxes_only)
    assert set(metrics["A"]) == {"bbox"} and metrics["A"]["bbox"]["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no 'segmentation' for segm"):
        evaluator.evaluate(boxes_only, iou_types=["segm"])
    with pytest.raises(ValueError, match="unknown iou types"):
        evaluator.evaluate(results, iou_types=["keypoints"])
    with pytest.raises(ValueError, match="overlap"):
        SplitEvaluator(val_file, ([1, 2], [2, 3]))
    with pytest.raises(ValueError, match="unknown category ids"):
        SplitEvaluator(val_file, ([1, 2], [99]))


def test_an_empty_class_set_is_undefined(val_file):
    metrics = SplitEvaluator(val_file, ([], list(range(1, 25)))).evaluate(_gt_as_results(val_file))
    assert all(value == -1.0 for value in metrics["A"]["segm"].values())
    assert metrics["B"]["segm"]["AP"] == pytest.approx(1.0)


def test_segm_needs_ground_truth_masks(tiny_coco):
    results = [{"image_id": 2, "category_id": 3, "bbox": [2.0, 3.0, 10.0, 8.0], "score": 0.9}]
    evaluator = SplitEvaluator(tiny_coco.annotation_file, "ids:1,2")
    assert evaluator.evaluate(results)["B"]["bbox"]["AP"] == pytest.approx(1.0)
    with pytest.raises(AnnotationError, match="annotation id 13: segm evaluation needs"):
        evaluator.evaluate([], iou_types=["segm"])


def test_encode_masks_accepts_compressed_rles():
    """The RLE output of maskx_kernels.paste_masks_rle (an accelerated torchvision model
    with masks="rle") goes into results files as it is, counts as strings."""
    import maskx_kernels

    masks = torch.rand(3, 28, 28)
    boxes = torch.tensor([[2.0, 3.0, 20.0, 15.0], [0.0, 0.0, 11.0, 9.0], [5.0, 1.0, 9.0, 14.0]])
    rles = maskx_kernels.paste_masks_rle(masks, boxes, (16, 24))
    dense = maskx_kernels.paste_masks(masks, boxes, (16, 24))
    assert encode_masks(rles) == encode_masks(dense)
    assert all(isinstance(r["counts"], str) for r in encode_masks(rles))
    with pytest.raises(ValueError, match="compressed RLE"):
        encode_masks([{"size": [16, 24]}])


def test_encode_masks_accepts_probabilities_and_binary_masks():
    probabilities = torch.zeros((2, 1, 12, 10))
    probabilities[0, 0, 2:5, 3:9] = 0.7
    probabilities[1, 0, 6:11, 1:4] = 0.51
    probabilities[1, 0, 0, 0] = 0.5  # not above the threshold
    from_probabilities = encode_masks(probabilities)
    from_binary = encode_masks(probabilities[:, 0] > 0.5)
    assert from_probabilities == from_binary
    assert [mask_utils.area(r) for r in from_probabilities] == [18, 15]
    assert isinstance(from_probabilities[0]["counts"], str)
    assert encode_masks(torch.zeros((0, 1, 12, 10))) == []
    with pytest.raises(ValueError, match="expected"):
        encode_masks(torch.zeros((2, 3, 12, 10)))


def test_detections_to_results_maps_labels_and_boxes(evaluator):
    outputs = [{"boxes": torch.tensor([[1.0, 2.0, 11.0, 22.0]]), "labels": torch.tensor([24]),
                "scores": torch.tensor([0.25])}]
    results = detections_to_coco_results([3], outputs, evaluator.category_map)
    assert results == [{"image_id": 3, "category_id": 24, "bbox": [1.0, 2.0, 10.0, 20.0],
                        "score": 0.25}]
    with pytest.raises(KeyError):
        detections_to_coco_results([3], [dict(outputs[0], labels=torch.tensor([25]))],
                                   evaluator.category_map)
    with pytest.raises(ValueError, match="1 outputs for 2 image ids"):
        detections_to_coco_results([3, 4], outputs, evaluator.category_map)


def _result(image_id=1, **changes):
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[5:15, 5:15] = 1
    result = {"image_id": image_id, "category_id": 1, "score": 0.9,
              "bbox": [5.0, 5.0, 10.0, 10.0], "segmentation": _rle(mask)}
    result.update(changes)
    return result


BAD_RESULTS = [
    ("not a list", {"image_id": 1}, "expected a JSON list of results"),
    ("not an object", [_result(), 3], "result 1: a result must be an object"),
    ("unknown image", [_result(), _result(image_id=9)],
     "result 1: image_id 9 is not an image of the ground truth"),
    ("unknown category", [_result(category_id=7)],
     "result 0 (image_id 1): category_id 7 is not a ground-truth category"),
    ("missing score", [{k: v for k, v in _result().items() if k != "score"}],
     "result 0 (image_id 1): score must be a finite number"),
    ("no box or mask", [{"image_id": 1, "category_id": 1, "score": 0.5}],
     "result 0 (image_id 1): a result needs a 'bbox' or a 'segmentation'"),
    ("negative box", [_result(bbox=[5.0, 5.0, 10.0, -1.0])],
     "result 0 (image_id 1): bbox [5.0, 5.0, 10.0, -1.0] has a negative size"),
    ("box outside", [_result(bbox=[5.0, 25.0, 10.0, 10.0])],
     "result 0 (image_id 1): bbox [5.0, 25.0, 10.0, 10.0] lies outside the 40x30 image"),
    ("RLE size", [_result(), _result(segmentation=dict(_result()["segmentation"], size=[40, 30]))],
     "result 1 (image_id 1): RLE size [40, 30] does not match"),
    ("polygon", [_result(segmentation=[[5, 5, 15, 5, 15, 15]])],
     "result 0 (image_id 1): segmentation must be a compressed RLE"),
    ("mixed keys", [_result(), {k: v for k, v in _result().items() if k != "segmentation"}],
     "result 1 (image_id 1): every result must carry the same"),
]


@pytest.mark.parametrize("results, message", [case[1:] for case in BAD_RESULTS],
                         ids=[case[0] for case in BAD_RESULTS])
def test_bad_results_files(tiny_coco, tmp_path, results, message):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    args = ["eval", "--annotations", str(tiny_coco.annotation_file), "--results", str(path),
            "--split", "ids:1"]
    with pytest.raises(AnnotationError) as info:
        cli.run_eval(cli.build_parser().parse_args(args))
    assert str(info.value).startswith(f"{path}: {message}")


def test_results_file_that_is_not_json(tiny_coco, tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text("[{]")
    code = cli.main(["eval", "--annotations", str(tiny_coco.annotation_file),
                     "--results", str(path), "--split", "ids:1"])
    assert code == 2
    assert f"{path}: not valid JSON" in capsys.readouterr().err


def test_cli_eval_prints_a_table_and_writes_metrics(val_file, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_gt_as_results(val_file)))
    out = tmp_path / "out" / "metrics.json"
    code = cli.main(["eval", "--annotations", str(val_file), "--results", str(results),
                     "--split", "synthetic", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "split synthetic: A = 12 classes, B = 12 classes" in printed
    assert "A     segm   100.0  100.0  100.0" in printed
    # COCOeval's own progress output is swallowed.
    assert "Accumulating" not in printed and "DONE" not in printed
    metrics = json.loads(out.read_text())
    assert list(metrics) == ["A", "B", "all"]
    assert metrics["B"]["segm"]["AP"] == pytest.approx(1.0)
    assert list(metrics["B"]["segm"]) == list(METRICS)


def test_cli_eval_rejects_coco_splits_on_other_datasets(val_file, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text("[]")
    code = cli.main(["eval", "--annotations", str(val_file), "--results", str(results),
                     "--split", "voc"])
    assert code == 2
    assert "split 'voc' needs COCO's 80 categories" in capsys.readouterr().err


def test_table_marks_undefined_values():
    values = dict.fromkeys(METRICS, 0.5) | {"APl": -1.0}
    table = format_metrics_table({"A": {"segm": values}})
    row = table.splitlines()[2].split()
    assert row == ["A", "segm", "50.0", "50.0", "50.0", "50.0", "50.0", "-"]


def test_cli_generate_data(tmp_path, capsys):
    code = cli.main(["generate-data", "--out", str(tmp_path / "synth"), "--num-train", "2",
                     "--num-val", "1", "--seed", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "train: 2 images" in printed and "val: 1 images" in printed
    data = json.loads((tmp_path / "synth/annotations/instances_train.json").read_text())
    assert len(data["images"]) == 2 and (tmp_path / "synth/train/000002.png").is_file()
    assert (tmp_path / "synth/val/000001.png").is_file()


def test_python_dash_m_entry_point():
    completed = subprocess.run([sys.executable, "-m", "maskx", "--help"], capture_output=True,
                               text=True, check=True)
    assert "generate-data" in completed.stdout and "eval" in completed.stdout
