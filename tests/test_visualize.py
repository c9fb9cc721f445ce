"""Drawing detections and ground truth, and the comparison grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from maskx.data import CategoryMap
from maskx.visualize import PALETTE, draw_detections, draw_ground_truth, prediction_grid

NAMES = ("square", "triangle", "blob")
HEIGHT, WIDTH = 80, 120
# A 20x20 square mask inside a box with a 5-pixel margin, so the mask's outline and the
# box are apart. Away from the top edge, where the caption goes.
MASK_ROWS, MASK_COLS = slice(30, 50), slice(40, 60)
BOX = (35.0, 25.0, 65.0, 55.0)  # pixel rows 25..54, columns 35..64


def _image(height: int = HEIGHT, width: int = WIDTH,
           seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """A random float image that converts back to uint8 exactly, and those uint8 pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255, pixels


def _detection(score: float = 0.9, label: int = 1, with_mask: bool = True) -> dict:
    detection = {
        "boxes": torch.tensor([BOX]),
        "labels": torch.tensor([label]),
        "scores": torch.tensor([score]),
    }
    if with_mask:
        masks = torch.zeros((1, 1, HEIGHT, WIDTH))
        masks[0, 0, MASK_ROWS, MASK_COLS] = 0.8
        detection["masks"] = masks
    return detection


def _changed(drawn: Image.Image, pixels: np.ndarray) -> np.ndarray:
    return (np.asarray(drawn) != pixels).any(axis=2)


def _box_outline(left: int, top: int, right: int, bottom: int) -> np.ndarray:
    outline = np.zeros((HEIGHT, WIDTH), dtype=bool)
    outline[top:bottom + 1, [left, right]] = True
    outline[[top, bottom], left:right + 1] = True
    return outline


def test_mask_and_box_change_exactly_their_pixels():
    image, pixels = _image()
    drawn = draw_detections(image, _detection(), NAMES)
    assert drawn.size == (WIDTH, HEIGHT) and drawn.mode == "RGB"
    out = np.asarray(drawn).astype(np.float64)
    colour = np.array(PALETTE[0])

    ring = np.zeros((HEIGHT, WIDTH), dtype=bool)
    ring[MASK_ROWS, MASK_COLS] = True
    ring[31:49, 41:59] = False
    assert (out[ring] == colour).all()
    # The mask's inside is the image blended with one colour: undoing the image's share
    # leaves the same colour everywhere.
    inside = out[31:49, 41:59] - 0.55 * pixels[31:49, 41:59]
    assert np.abs(inside / 0.45 - colour).max() < 2.5

    outline = _box_outline(35, 25, 64, 54)
    assert (out[outline] == colour).all()
    # Between the box and the mask, and everywhere else except above the box (where the
    # caption is), the image is untouched.
    changed = _changed(drawn, pixels)
    between = np.zeros((HEIGHT, WIDTH), dtype=bool)
    between[26:54, 36:64] = True
    between[MASK_ROWS, MASK_COLS] = False
    assert not changed[between].any()
    rows, cols = np.nonzero(changed & ~outline & ~ring)
    outside = (rows < 25) | (rows > 54) | (cols < 35) | (cols > 64)
    caption_rows = rows[outside]
    assert caption_rows.size > 0
    assert caption_rows.max() < 25 and caption_rows.min() >= 25 - 20
    assert cols[outside].min() >= 35
    assert not changed[55:].any() and not changed[:, :35].any()


def test_scores_below_the_threshold_draw_nothing():
    image, pixels = _image()
    detection = _detection(score=0.3)
    assert np.array_equal(np.asarray(draw_detections(image, detection, NAMES)), pixels)
    assert np.array_equal(
        np.asarray(draw_detections(Image.fromarray(pixels), detection, NAMES)), pixels)
    assert not np.array_equal(
        np.asarray(draw_detections(image, detection, NAMES, score_threshold=0.2)), pixels)


def test_empty_detections_leave_the_image_as_it_is():
    image, pixels = _image()
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64),
             "scores": torch.zeros(0), "masks": torch.zeros((0, 1, HEIGHT, WIDTH))}
    assert np.array_equal(np.asarray(draw_detections(image, empty, NAMES)), pixels)
    flat = {"boxes": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64),
            "scores": torch.zeros(0)}
    assert np.array_equal(np.asarray(draw_detections(image, flat, NAMES)), pixels)


def test_set_b_detections_get_a_dashed_box_and_a_wider_caption():
    image, pixels = _image()
    a = np.asarray(draw_detections(image, _detection(label=2), NAMES))
    b = np.asarray(draw_detections(image, _detection(label=2), NAMES, b_labels=[2]))
    colour = np.array(PALETTE[0])
    outline = _box_outline(35, 25, 64, 54)
    assert (a[outline] == colour).all()
    on_b_outline = (b[outline] == colour).all(axis=1)
    assert 0.3 < on_b_outline.mean() < 0.9
    assert np.array_equal(b[outline][~on_b_outline], pixels[outline][~on_b_outline])
    # Dashes start at every corner, so the box stays closed.
    for row, col in ((25, 35), (25, 64), (54, 35), (54, 64)):
        assert (b[row, col] == colour).all()
    # " (B)" makes the caption wider; the masks are drawn alike.
    caption_a = _changed(Image.fromarray(a), pixels)[:25].any(axis=0)
    caption_b = _changed(Image.fromarray(b), pixels)[:25].any(axis=0)
    assert caption_b.sum() > caption_a.sum()
    assert np.array_equal(a[MASK_ROWS, MASK_COLS], b[MASK_ROWS, MASK_COLS])


def test_boxes_only_detections_leave_the_box_inside_untouched():
    image, pixels = _image()
    drawn = draw_detections(image, _detection(with_mask=False), NAMES)
    changed = _changed(drawn, pixels)
    assert changed[_box_outline(35, 25, 64, 54)].all()
    assert not changed[26:54, 36:64].any()


def test_boxes_partly_or_wholly_outside_the_image():
    image, pixels = _image()
    detection = {"boxes": torch.tensor([[-20.0, 30.0, 50.0, 200.0]]),
                 "labels": torch.tensor([3]), "scores": torch.tensor([0.8])}
    changed = _changed(draw_detections(image, detection, NAMES), pixels)
    # Only the top and the right side are inside the image.
    assert changed[30, :50].all() and changed[30:, 49].all()
    assert not changed[31:, :49].any() and not changed[31:, 50:].any()

    huge = {"boxes": torch.tensor([[-1e12, -1e12, 1e12, 1e12]]),
            "labels": torch.tensor([1]), "scores": torch.tensor([0.8])}
    changed = _changed(draw_detections(image, huge, NAMES), pixels)
    # No side is visible; the caption stays inside the image, at its top left.
    rows, cols = np.nonzero(changed)
    assert rows.size and rows.min() == 0 and cols.min() == 0 and rows.max() < 25


def test_captions_are_moved_into_the_image():
    image, pixels = _image()
    corners = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [110.0, 70.0, 120.0, 80.0]]),
               "labels": torch.tensor([1, 2]), "scores": torch.tensor([0.9, 0.8])}
    changed = _changed(draw_detections(image, corners, NAMES), pixels)
    # No room above the top-left box: its caption goes inside, at the image's corner.
    assert changed[0, :20].all() and changed[:5, 0].all()
    # The bottom-right box's caption sits above it, shifted left to end at the border.
    row = np.flatnonzero(changed[69])
    assert row.max() == WIDTH - 1 and np.array_equal(row, np.arange(row.min(), WIDTH))
    assert row.min() < 110


def test_drawing_is_deterministic_and_leaves_the_input_alone():
    image, _ = _image()
    generator = torch.Generator().manual_seed(1)
    corners = torch.tensor([[0.0, 0.0, 10.0, 10.0], [110.0, 0.0, 120.0, 10.0],
                            [0.0, 70.0, 10.0, 80.0], [110.0, 70.0, 120.0, 80.0]])
    detections = {"boxes": corners, "labels": torch.tensor([1, 2, 3, 1]),
                  "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]),
                  "masks": torch.rand((4, 1, HEIGHT, WIDTH), generator=generator)}
    before = image.clone()
    first = draw_detections(image, detections, NAMES, b_labels=[2])
    second = draw_detections(image, detections, NAMES, b_labels=[2])
    assert np.array_equal(np.asarray(first), np.asarray(second))
    assert torch.equal(image, before)
    assert first.size == (WIDTH, HEIGHT)


def test_max_detections_keeps_the_highest_scores():
    image, pixels = _image()
    detections = {"boxes": torch.tensor([[5.0, 40.0, 20.0, 60.0], [80.0, 40.0, 100.0, 60.0]]),
                  "labels": torch.tensor([1, 2]), "scores": torch.tensor([0.6, 0.95])}
    changed = _changed(draw_detections(image, detections, NAMES, max_detections=1), pixels)
    assert changed[40:60, 80:100].any()
    assert not changed[40:, :21].any()
    assert np.array_equal(
        np.asarray(draw_detections(image, detections, NAMES, max_detections=0)), pixels)


def test_mask_threshold_and_binary_masks():
    image, pixels = _image()
    detection = _detection(with_mask=False)
    detection["masks"] = torch.zeros((1, 1, HEIGHT, WIDTH))
    detection["masks"][0, 0, MASK_ROWS, MASK_COLS] = 0.4
    inside = slice(32, 48), slice(42, 58)
    assert not _changed(draw_detections(image, detection, NAMES), pixels)[inside].any()
    assert _changed(draw_detections(image, detection, NAMES, mask_threshold=0.3),
                    pixels)[inside].all()
    detection["masks"] = (detection["masks"][:, 0] > 0).to(torch.uint8)
    assert _changed(draw_detections(image, detection, NAMES), pixels)[inside].all()


@pytest.mark.parametrize("size", [(8, 8), (1, 5), (600, 1000)])
def test_output_has_the_input_size(size):
    height, width = size
    image, _ = _image(height, width)
    box = torch.tensor([[1.0, 1.0, width - 1.0, height - 1.0]]) if height > 2 else \
        torch.tensor([[0.0, 0.0, width, height]], dtype=torch.float32)
    masks = torch.zeros((1, 1, height, width))
    masks[..., height // 4: height - height // 4 + 1, width // 4: width - width // 4] = 1.0
    detection = {"boxes": box, "labels": torch.tensor([1]), "scores": torch.tensor([0.9]),
                 "masks": masks}
    drawn = draw_detections(image, detection, NAMES, b_labels=[1])
    assert drawn.size == (width, height) and drawn.mode == "RGB"


def test_other_image_kinds():
    image, pixels = _image()
    detection = _detection()
    expected = np.asarray(draw_detections(image, detection, NAMES))
    as_uint8 = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    assert np.array_equal(np.asarray(draw_detections(as_uint8, detection, NAMES)), expected)
    assert np.array_equal(
        np.asarray(draw_detections(Image.fromarray(pixels), detection, NAMES)), expected)
    gray = image[:1]
    drawn = np.asarray(draw_detections(gray, detection, NAMES))
    drawn_2d = np.asarray(draw_detections(gray[0], detection, NAMES))
    assert np.array_equal(drawn, drawn_2d)
    far = drawn[60:, :30]
    assert (far == far[..., :1]).all()
    assert np.array_equal(
        np.asarray(draw_detections(Image.fromarray(pixels[..., 0]), detection, NAMES)), drawn)


def test_names_may_be_a_category_map():
    image, _ = _image()
    categories = CategoryMap([{"id": 7, "name": "square"}, {"id": 3, "name": "triangle"}])
    detection = _detection(label=2)
    assert np.array_equal(np.asarray(draw_detections(image, detection, categories)),
                          np.asarray(draw_detections(image, detection, ["triangle", "square"])))
    with pytest.raises(ValueError, match=r"labels \[3\] not in 1\.\.2"):
        draw_detections(image, _detection(label=3), categories)


def _target() -> dict:
    masks = torch.zeros((3, HEIGHT, WIDTH), dtype=torch.uint8)
    masks[0, MASK_ROWS, MASK_COLS] = 1
    masks[2, 41:69, 6:24] = 1
    # A set-B instance's mask is never drawn, whatever it holds.
    masks[1, 60:75, 80:110] = 1
    return {"boxes": torch.tensor([BOX, [75.0, 55.0, 115.0, 78.0], [5.0, 40.0, 25.0, 70.0]]),
            "labels": torch.tensor([1, 2, 3]), "masks": masks,
            "has_mask": torch.tensor([True, False, True]), "image_id": 1}


def test_ground_truth_draws_masks_of_a_and_dashed_boxes_of_b():
    image, pixels = _image()
    target = _target()
    drawn = np.asarray(draw_ground_truth(image, target, NAMES))
    changed = _changed(Image.fromarray(drawn), pixels)
    assert changed[31:49, 41:59].all()
    assert not changed[60:75, 80:110][3:-3, 3:-3].any()
    colours = [np.array(c) for c in PALETTE[:3]]
    top_of_b = (drawn[55, 75:115] == colours[1]).all(axis=1)
    assert 0.3 < top_of_b.mean() < 0.9
    assert (drawn[40, 5:25] == colours[2]).all()

    # b_labels marks an instance as B even with a mask, and still draws its mask.
    marked = np.asarray(draw_ground_truth(image, target, NAMES, b_labels=[3]))
    assert not (marked[40, 5:25] == colours[2]).all(axis=1).all()
    assert np.array_equal(marked[42:68, 7:23], drawn[42:68, 7:23])
    assert _changed(Image.fromarray(marked), pixels)[42:68, 7:23].all()


def test_ground_truth_without_masks_is_not_all_b():
    image, _ = _image()
    target = _target()
    del target["masks"], target["has_mask"]
    drawn = np.asarray(draw_ground_truth(image, target, NAMES))
    assert (drawn[_box_outline(35, 25, 64, 54)] == PALETTE[0]).all()


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(masks=d["masks"][:0]), "0 masks for 1 boxes"),
    (lambda d: d.update(masks=torch.zeros((1, 1, 10, 10))), "masks of size 10x10"),
    (lambda d: d.update(masks=torch.zeros((1, 2, HEIGHT, WIDTH))), "masks of shape"),
    (lambda d: d.update(labels=torch.tensor([4])), r"labels \[4\] not in 1\.\.3"),
    (lambda d: d.update(labels=torch.tensor([0])), r"labels \[0\] not in 1\.\.3"),
    (lambda d: d.update(labels=torch.tensor([1.0])), "expected integer labels"),
    (lambda d: d.update(labels=torch.tensor([1, 2])), "2 labels for 1 boxes"),
    (lambda d: d.update(scores=torch.tensor([0.9, 0.8])), "2 scores for 1 boxes"),
    (lambda d: d.pop("scores"), "no 'scores'"),
    (lambda d: d.pop("boxes"), "no 'boxes'"),
    (lambda d: d.update(boxes=torch.tensor([[1.0, 2.0, 3.0]])), r"boxes of shape \(1, 3\)"),
    (lambda d: d.update(boxes=torch.tensor([[50.0, 2.0, 30.0, 9.0]])), "x1 <= x2"),
    (lambda d: d.update(boxes=torch.tensor([[float("nan"), 2.0, 30.0, 9.0]])), "finite"),
])
def test_bad_detections_raise(edit, message):
    image, _ = _image()
    detection = _detection()
    edit(detection)
    with pytest.raises(ValueError, match=message):
        draw_detections(image, detection, NAMES)


def test_bad_arguments_raise():
    image, _ = _image()
    with pytest.raises(ValueError, match=r"b_labels \[90\] not in 1\.\.3"):
        draw_detections(image, _detection(), NAMES, b_labels=[90])
    with pytest.raises(ValueError, match="max_detections"):
        draw_detections(image, _detection(), NAMES, max_detections=-1)
    with pytest.raises(ValueError, match=r"image of shape \(4, 80, 120\)"):
        draw_detections(torch.rand(4, HEIGHT, WIDTH), _detection(), NAMES)
    with pytest.raises(ValueError, match="image of dtype int64"):
        draw_detections(torch.zeros((3, HEIGHT, WIDTH), dtype=torch.int64), _detection(), NAMES)
    target = _target()
    target["has_mask"] = torch.tensor([True])
    with pytest.raises(ValueError, match="1 has_mask flags for 3 boxes"):
        draw_ground_truth(image, target, NAMES)


def _drawings(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(120, 80), (64, 200), (300, 150), (17, 9)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            for w, h in (sizes[i % len(sizes)] for i in range(count))]


def test_grid_size_follows_rows_and_columns():
    cell = (100, 80)

    def size(rows: int, columns: int, **kwargs) -> tuple[int, int]:
        grid = prediction_grid([_drawings(columns, seed=r) for r in range(rows)],
                               [f"variant {c}" for c in range(columns)], cell_size=cell,
                               **kwargs)
        return grid.size

    w11, h11 = size(1, 1)
    w21, h21 = size(2, 1)
    w31, h31 = size(3, 1)
    w12, h12 = size(1, 2)
    w13, h13 = size(1, 3)
    assert w11 == w21 == w31 and h11 == h12 == h13
    assert h31 - h21 == h21 - h11 >= cell[1]
    assert w13 - w12 == w12 - w11 >= cell[0]
    assert w11 > cell[0] and h11 > cell[1]
    labelled = size(2, 1, row_labels=["image 1", "image 2"])
    assert labelled[1] == h21 and labelled[0] > w21


def test_grid_cells_keep_the_aspect_ratio_and_the_grid_is_saved(tmp_path):
    rng = np.random.default_rng(3)
    # Reddish random pixels, told apart from the white margins and the black titles.
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[..., 0] = rng.integers(170, 220, (100, 200))
    pixels[..., 1:] = rng.integers(0, 40, (100, 200, 2))
    out_path = tmp_path / "predictions.png"
    grid = prediction_grid([[Image.fromarray(pixels)]], ["ground truth"], out_path=out_path,
                           cell_size=(100, 100))
    array = np.asarray(grid).astype(int)
    rows, cols = np.nonzero(array[..., 0] - array[..., 1] > 100)
    assert rows.max() - rows.min() + 1 == 50 and cols.max() - cols.min() + 1 == 100
    with Image.open(out_path) as saved:
        assert saved.format == "PNG"
        assert np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(grid))


def test_bad_grids_raise():
    cells = _drawings(2)
    with pytest.raises(ValueError, match="row 1 has 1 images for 2 column titles"):
        prediction_grid([cells, cells[:1]], ["a", "b"])
    with pytest.raises(ValueError, match="no rows"):
        prediction_grid([], ["a"])
    with pytest.raises(ValueError, match="no column titles"):
        prediction_grid([[]], [])
    with pytest.raises(ValueError, match="1 row labels for 2 rows"):
        prediction_grid([cells, cells], ["a", "b"], row_labels=["x"])
    with pytest.raises(ValueError, match="cell_size must be positive"):
        prediction_grid([cells], ["a", "b"], cell_size=(0, 10))
    with pytest.raises(TypeError, match="row 0, column 1 is a Tensor"):
        prediction_grid([[cells[0], torch.rand(3, 4, 4)]], ["a", "b"])
