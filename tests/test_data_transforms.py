import pytest
import torch

from maskx.data.collate import collate_detection
from maskx.data.sampler import SeededSampler
from maskx.data.transforms import Compose, RandomHorizontalFlip, Resize, train_transforms


def _tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    boxes = []
    for mask in masks:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(boxes, dtype=torch.float32)


def _sample(height: int = 30, width: int = 40):
    """Two instances with masks (an L shape and a bar) and one box-only instance."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((3, height, width), generator=generator)
    masks = torch.zeros((3, height, width), dtype=torch.uint8)
    masks[0, 2:12, 3:6] = 1
    masks[0, 9:12, 3:14] = 1
    masks[1, 15:28, 30:37] = 1
    boxes = torch.cat([_tight_boxes(masks[:2]), torch.tensor([[20.0, 4.0, 29.0, 13.0]])])
    target = {
        "boxes": boxes,
        "labels": torch.tensor([1, 2, 3]),
        "masks": masks,
        "has_mask": torch.tensor([True, True, False]),
        "image_id": 7,
        "iscrowd": torch.zeros(3, dtype=torch.int64),
        "area": masks.flatten(1).sum(1).float(),
    }
    return image, target


def test_flip_keeps_boxes_on_their_masks():
    image, target = _sample()
    flipped_image, flipped = RandomHorizontalFlip(p=1.0)(image, target)
    assert torch.equal(flipped_image, image.flip(-1))
    assert torch.equal(flipped["boxes"][:2], _tight_boxes(flipped["masks"][:2]))
    assert flipped["boxes"][2].tolist() == [40 - 29.0, 4.0, 40 - 20.0, 13.0]
    assert flipped["masks"][2].sum() == 0
    assert torch.equal(target["boxes"], _sample()[1]["boxes"]), "input target was modified"
    twice_image, twice = RandomHorizontalFlip(p=1.0)(flipped_image, flipped)
    assert torch.equal(twice_image, image) and torch.equal(twice["boxes"], target["boxes"])
    unchanged_image, unchanged = RandomHorizontalFlip(p=0.0)(image, target)
    assert unchanged_image is image and unchanged is target


def test_resize_scales_image_boxes_masks_and_area_together():
    image, target = _sample()
    resized_image, resized = Resize(60, 1000)(image, target)
    assert resized_image.shape == (3, 60, 80)
    assert torch.equal(resized["boxes"], target["boxes"] * 2)
    assert torch.equal(resized["boxes"][:2], _tight_boxes(resized["masks"][:2]))
    assert torch.equal(resized["area"][:2], resized["masks"][:2].flatten(1).sum(1).float())
    assert resized["masks"].shape == (3, 60, 80) and resized["masks"][2].sum() == 0
    assert resized["masks"].dtype == torch.uint8


def test_resize_respects_the_max_size_and_odd_scales():
    image, target = _sample()
    resized_image, resized = Resize(300, 100)(image, target)
    assert resized_image.shape == (3, 75, 100)
    resized_image, resized = Resize(45, 1000)(image, target)
    assert resized_image.shape == (3, 45, 60)
    # Nearest-neighbour masks stay within a pixel of the scaled boxes.
    assert (resized["boxes"][:2] - _tight_boxes(resized["masks"][:2])).abs().max() <= 1.0


def test_multi_scale_choice_follows_the_torch_seed():
    image, target = _sample()
    resize = Resize((32, 48, 64), 1000)
    torch.manual_seed(3)
    first = [resize(image, target)[0].shape[-2] for _ in range(12)]
    torch.manual_seed(3)
    second = [resize(image, target)[0].shape[-2] for _ in range(12)]
    assert first == second and set(first) == {32, 48, 64}


def test_train_transforms_compose():
    transform = train_transforms(60, 1000, flip_probability=1.0)
    assert isinstance(transform, Compose)
    image, target = _sample()
    out_image, out = transform(image, target)
    assert out_image.shape == (3, 60, 80)
    assert torch.equal(out["boxes"][:2], _tight_boxes(out["masks"][:2]))


def test_seeded_sampler_is_deterministic_and_reshuffles_per_epoch():
    data = range(50)
    a = SeededSampler(data, seed=1)
    b = SeededSampler(data, seed=1)
    assert list(a) == list(b) and sorted(a) == list(data) and list(a) != list(data)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(data)
    assert list(SeededSampler(data, seed=2)) != first
    assert list(SeededSampler(data, shuffle=False)) == list(data)


def test_seeded_sampler_shards_across_replicas():
    data = range(11)
    shards = [list(SeededSampler(data, seed=0, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(shard) == 4 for shard in shards)
    assert set(sum(shards, [])) == set(data)
    with pytest.raises(ValueError):
        SeededSampler(data, num_replicas=2, rank=2)


def test_collate_keeps_variable_sizes_as_lists():
    batch = [_sample(30, 40), _sample(32, 38)]
    images, targets = collate_detection(batch)
    assert [tuple(i.shape) for i in images] == [(3, 30, 40), (3, 32, 38)]
    assert [t["image_id"] for t in targets] == [7, 7]
