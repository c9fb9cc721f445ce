import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from maskx.data import (
    AnnotationError,
    CocoInstanceDataset,
    SeededSampler,
    coco_layout,
    collate_detection,
    train_transforms,
)
from maskx.data.synthetic import SYNTHETIC_SPLIT_A


def _tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    boxes = []
    for mask in masks:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def test_synthetic_round_trip_follows_the_split(synthetic_root):
    dataset = CocoInstanceDataset(*coco_layout(synthetic_root, "train"), split="synthetic")
    coco = dataset.coco
    names = dict(zip(dataset.category_map.category_ids, dataset.category_map.names))
    assert len(dataset) == 6 and dataset.category_map.num_classes == 25
    seen_a = seen_b = 0
    for index in range(len(dataset)):
        image, target = dataset[index]
        info = coco.imgs[target["image_id"]]
        assert image.shape == (3, info["height"], info["width"]) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.05
        anns = coco.imgToAnns[target["image_id"]]
        category_ids = dataset.category_map.category_ids_of(target["labels"]).tolist()
        assert category_ids == [ann["category_id"] for ann in anns]
        expected_has_mask = [names[c] in SYNTHETIC_SPLIT_A for c in category_ids]
        assert target["has_mask"].tolist() == expected_has_mask
        masks, has_mask = target["masks"], target["has_mask"]
        assert masks.dtype == torch.uint8 and masks.shape[1:] == image.shape[1:]
        assert torch.equal(target["boxes"][has_mask], _tight_boxes(masks[has_mask]))
        assert masks[~has_mask].sum() == 0
        for i in torch.nonzero(has_mask).flatten().tolist():
            assert masks[i].sum() == target["area"][i]
        seen_a += int(has_mask.sum())
        seen_b += int((~has_mask).sum())
    assert seen_a > 0 and seen_b > 0


def test_full_supervision_gives_every_instance_its_mask(synthetic_root):
    dataset = CocoInstanceDataset(*coco_layout(synthetic_root, "val"), split=None)
    for index in range(len(dataset)):
        _, target = dataset[index]
        assert target["has_mask"].all()
        assert torch.equal(target["boxes"], _tight_boxes(target["masks"]))


def test_masks_of_set_b_are_never_decoded(synthetic_root, monkeypatch):
    decoded = []
    real_decode = mask_utils.decode

    def counting_decode(rles):
        decoded.append(len(rles))
        return real_decode(rles)

    monkeypatch.setattr(mask_utils, "decode", counting_decode)
    b_only = CocoInstanceDataset(*coco_layout(synthetic_root, "val"), split=[])
    for index in range(len(b_only)):
        _, target = b_only[index]
        assert not target["has_mask"].any() and target["masks"].sum() == 0
    assert decoded == []
    partial = CocoInstanceDataset(*coco_layout(synthetic_root, "val"), split="synthetic")
    expected = [int(partial[i][1]["has_mask"].sum()) for i in range(len(partial))]
    assert decoded == [n for n in expected if n]


def test_polygons_rle_crowd_and_box_only_annotations(tiny_coco):
    train = CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.annotation_file, split="ids:1,2")
    # Image 3 holds only a crowd region: dropped for training.
    assert train.image_ids == [1, 2]
    _, target = train[0]
    assert target["labels"].tolist() == [1, 2] and target["has_mask"].tolist() == [True, True]
    assert target["boxes"].tolist() == [[5, 5, 15, 15], [20, 8, 36, 24]]
    square = mask_utils.decode(mask_utils.merge(
        mask_utils.frPyObjects([[5, 5, 15, 5, 15, 15, 5, 15]], 30, 40)))
    assert np.array_equal(target["masks"][0].numpy(), square) and square.sum() >= 100
    assert torch.equal(target["boxes"][1:], _tight_boxes(target["masks"][1:]))
    _, target = train[1]
    assert target["labels"].tolist() == [3, 1] and target["has_mask"].tolist() == [False, True]
    assert target["masks"][0].sum() == 0 and target["masks"][1].sum() > 0

    evaluation = CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.annotation_file,
                                     split="names:square,triangle", train=False)
    assert evaluation.image_ids == [1, 2, 3]
    _, crowd = evaluation[2]
    assert crowd["iscrowd"].tolist() == [1] and crowd["has_mask"].tolist() == [False]
    # With blob in set A (and its box-only annotation gone) the crowd RLE is decoded.
    data = tiny_coco.edited()
    del data["annotations"][3]
    evaluation = CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.write(data), train=False)
    _, crowd = evaluation[2]
    assert crowd["has_mask"].tolist() == [True]
    assert crowd["masks"][0, 4:12, 6:18].all() and crowd["masks"].sum() == 96


def test_zero_size_boxes_are_dropped_for_training(tiny_coco):
    data = tiny_coco.edited()
    data["annotations"][0]["bbox"] = [5.0, 5.0, 0.0, 10.0]
    path = tiny_coco.write(data)
    train = CocoInstanceDataset(tiny_coco.image_dir, path, split="ids:1,2")
    assert train[0][1]["labels"].tolist() == [2]
    evaluation = CocoInstanceDataset(tiny_coco.image_dir, path, split="ids:1,2", train=False)
    assert evaluation[0][1]["labels"].tolist() == [1, 2]


def test_data_loader_with_worker_sampler_and_transforms(synthetic_root):
    dataset = CocoInstanceDataset(*coco_layout(synthetic_root, "train"), split="synthetic",
                                  transforms=train_transforms((96, 128), 160))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=2, sampler=SeededSampler(dataset, seed=3),
        collate_fn=collate_detection, num_workers=1)
    image_ids = []
    for images, targets in loader:
        assert len(images) == len(targets) == 2
        for image, target in zip(images, targets):
            assert min(image.shape[1:]) in (96, 128) and max(image.shape[1:]) <= 160
            assert target["masks"].shape[1:] == image.shape[1:]
            image_ids.append(target["image_id"])
    assert sorted(image_ids) == dataset.image_ids


def _set(path, value):
    def edit(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


BAD_ANNOTATIONS = [
    ("missing key", lambda d: d.pop("annotations"), "missing key 'annotations'"),
    ("unknown category", _set(["annotations", 1, "category_id"], 99),
     "annotation id 11: category_id 99 is not in 'categories'"),
    ("unknown image", _set(["annotations", 4, "image_id"], 7),
     "annotation id 14: image_id 7 is not in 'images'"),
    ("two-point polygon", _set(["annotations", 0, "segmentation"], [[5, 5, 15, 5]]),
     "annotation id 10: segmentation has a polygon with fewer than 3 points"),
    ("odd polygon", _set(["annotations", 0, "segmentation"], [[5, 5, 15, 5, 15, 15, 5]]),
     "annotation id 10: segmentation has a polygon with an odd number"),
    ("RLE size", _set(["annotations", 1, "segmentation", "size"], [31, 40]),
     "annotation id 11: RLE size [31, 40] does not match the image size"),
    ("uncompressed RLE length", _set(["annotations", 2, "segmentation", "counts"], [10, 20]),
     "annotation id 12: uncompressed RLE counts cover 30 pixels"),
    ("negative box", _set(["annotations", 0, "bbox"], [5.0, 5.0, -3.0, 10.0]),
     "annotation id 10: bbox [5.0, 5.0, -3.0, 10.0] has a negative size"),
    ("box outside", _set(["annotations", 0, "bbox"], [35.0, 5.0, 20.0, 10.0]),
     "annotation id 10: bbox [35.0, 5.0, 20.0, 10.0] lies outside the 40x30 image"),
    ("box not numbers", _set(["annotations", 0, "bbox"], [5, 5, "10", 10]),
     "annotation id 10: bbox must be 4 finite numbers"),
    ("missing bbox", lambda d: d["annotations"][3].pop("bbox"),
     "annotation id 13: missing keys ['bbox']"),
    ("duplicate id", _set(["annotations", 1, "id"], 10), "annotation id 10: duplicate id"),
    ("missing id", lambda d: d["annotations"][1].pop("id"),
     "annotation at index 1: missing or non-integer 'id'"),
    ("bad iscrowd", _set(["annotations", 0, "iscrowd"], 2),
     "annotation id 10: iscrowd must be 0 or 1"),
    ("image size", _set(["images", 0, "width"], 0),
     "image id 1: 'width' must be a positive integer"),
    ("category name", _set(["categories", 2, "name"], "square"),
     "category id 3: duplicate category name 'square'"),
]


@pytest.mark.parametrize("edit, message", [case[1:] for case in BAD_ANNOTATIONS],
                         ids=[case[0] for case in BAD_ANNOTATIONS])
def test_bad_annotation_files_fail_at_construction(tiny_coco, edit, message):
    data = tiny_coco.edited()
    edit(data)
    path = tiny_coco.write(data)
    with pytest.raises(AnnotationError) as info:
        CocoInstanceDataset(tiny_coco.image_dir, path, split="ids:1,2")
    assert str(info.value).startswith(f"{path}: {message}")


def test_not_json_and_missing_file(tiny_coco, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(AnnotationError, match="not valid JSON") as info:
        CocoInstanceDataset(tiny_coco.image_dir, broken)
    assert info.value.path == str(broken)
    with pytest.raises(AnnotationError, match="file not found"):
        CocoInstanceDataset(tiny_coco.image_dir, tmp_path / "absent.json")
    listing = tmp_path / "list.json"
    listing.write_text("[]")
    with pytest.raises(AnnotationError, match="expected a JSON object"):
        CocoInstanceDataset(tiny_coco.image_dir, listing)


def test_mask_classes_need_segmentations(tiny_coco):
    with pytest.raises(AnnotationError) as info:
        CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.annotation_file, split="names:blob")
    assert info.value.item == "annotation id 13" and "no segmentation" in info.value.reason


def test_image_files_are_checked_up_front(tiny_coco):
    (tiny_coco.image_dir / "b.png").unlink()
    with pytest.raises(AnnotationError, match=r"image id 2: image file .*b\.png not found"):
        CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.annotation_file, split="ids:1")
    Image.fromarray(np.full((31, 32, 3), 90, dtype=np.uint8)).save(tiny_coco.image_dir / "b.png")
    with pytest.raises(AnnotationError,
                       match="image id 2: image file .* is 32x31, the annotation says 32x32"):
        CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.annotation_file, split="ids:1")
    (tiny_coco.image_dir / "a.png").write_bytes(b"not an image")
    with pytest.raises(AnnotationError, match=r"image id 1: image file .*a\.png cannot be read"):
        CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.annotation_file, split="ids:1")
    # Without the header check the same problems are still named when an image is read.
    dataset = CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.annotation_file, split="ids:1",
                                  verify_images=False)
    with pytest.raises(AnnotationError, match="is 32x31"):
        dataset[1]


def test_split_errors(tiny_coco):
    with pytest.raises(ValueError, match="unknown category ids"):
        CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.annotation_file, split=[1, 42])
    with pytest.raises(ValueError, match="COCO's 80 categories"):
        CocoInstanceDataset(tiny_coco.image_dir, tiny_coco.annotation_file, split="voc")


def test_annotation_error_is_a_value_error(tiny_coco, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": "x"}))
    with pytest.raises(ValueError, match="missing key 'categories'"):
        CocoInstanceDataset(tiny_coco.image_dir, path)
