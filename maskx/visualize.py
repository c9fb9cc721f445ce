"""Drawings of detections and ground truth, and grids of them to compare model variants.

``draw_detections`` and ``draw_ground_truth`` draw one image's instances in the same
look: each mask as a translucent fill with a crisp outline, each box, and a caption with
the class name (and the score) on a filled label. Instances of set-B classes, which are
trained without masks, are marked with a dashed box and a " (B)" caption, so that a
drawing shows at a glance which masks the model learnt only through weight transfer.
``prediction_grid`` puts such drawings side by side, one row per image and one column per
variant (e.g. ground truth, class-agnostic, transfer, oracle), as a demo's
``predictions.png``.

Images are float tensors [3, H, W] in [0, 1] (as the datasets give them), uint8 tensors
[3, H, W], single-channel [1, H, W] or [H, W] versions of either, or PIL images. The
drawing is done in numpy and Pillow only: masks and boxes are painted into the pixel
array, each mask blended and outlined within its bounding region only, which keeps a
hundred masks on a large image well under a second; captions are drawn by Pillow with
its built-in font.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from maskx.data.categories import CategoryMap
from maskx.evaluation.detections import to_numpy

# Distinct, saturated colours (Sasha Trubetskoy's list, without the greys), given to
# instances in order of decreasing score so that the same input gives the same pixels.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (128, 0, 0), (170, 255, 195),
    (128, 128, 0), (255, 215, 180), (0, 0, 128),
)
MASK_ALPHA = 0.45
B_SUFFIX = " (B)"



def _to_pixels(image) -> np.ndarray:
    """Any accepted image -> a new uint8 array [H, W, 3] that drawing may write into."""
    if isinstance(image, Image.Image):
        return np.array(image.convert("RGB"))
    array = to_numpy(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"image of shape {tuple(array.shape)}: expected [3, H, W], "
                         "[1, H, W] or [H, W] (or a PIL image)")
    if array.dtype.kind == "f":
        # rint, not truncation, so that a uint8 image divided by 255 comes back unchanged.
        array = np.rint(np.clip(array, 0.0, 1.0) * 255.0)
    elif array.dtype != np.uint8:
        raise ValueError(f"image of dtype {array.dtype}: expected float in [0, 1] or uint8")
    pixels = np.ascontiguousarray(array.transpose(1, 2, 0), dtype=np.uint8)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return pixels


def _names(names: Sequence[str] | CategoryMap) -> tuple[str, ...]:
    return tuple(names.names if isinstance(names, CategoryMap) else names)


def _check_labels(labels: np.ndarray, num_names: int, what: str) -> None:
    if labels.size and labels.dtype.kind not in "iu":
        raise ValueError(f"{what} of dtype {labels.dtype}: expected integer labels")
    bad = labels[(labels < 1) | (labels > num_names)]
    if bad.size:
        raise ValueError(f"{what} {sorted(set(bad.tolist()))} not in 1..{num_names} "
                         f"(labels index names, which has {num_names} entries)")


def _instances(values: Mapping, image_size: tuple[int, int], num_names: int):
    """Validated ``boxes`` [N, 4] float64, ``labels`` [N] int64 and ``masks`` [N, H, W]
    (or None) of a detection or target dict."""
    for key in ("boxes", "labels"):
        if key not in values:
            raise ValueError(f"no '{key}' given")
    boxes = to_numpy(values["boxes"]).astype(np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes of shape {boxes.shape}: expected [N, 4]")
    if not np.isfinite(boxes).all():
        raise ValueError("boxes must be finite")
    if (boxes[:, 2:] < boxes[:, :2]).any():
        raise ValueError("boxes must be x1 y1 x2 y2 with x1 <= x2 and y1 <= y2")
    labels = to_numpy(values["labels"]).reshape(-1)
    if len(labels) != len(boxes):
        raise ValueError(f"{len(labels)} labels for {len(boxes)} boxes")
    _check_labels(labels, num_names, "labels")
    masks = None
    if values.get("masks") is not None:
        masks = to_numpy(values["masks"])
        if masks.ndim == 4 and masks.shape[1] == 1:
            masks = masks[:, 0]
        if masks.ndim != 3:
            raise ValueError(f"masks of shape {masks.shape}: expected [N, H, W] or [N, 1, H, W]")
        if len(masks) != len(boxes):
            raise ValueError(f"{len(masks)} masks for {len(boxes)} boxes")
        if masks.shape[1:] != image_size:
            raise ValueError(f"masks of size {masks.shape[1]}x{masks.shape[2]} for an image "
                             f"of size {image_size[0]}x{image_size[1]} (H x W)")
    return boxes, labels.astype(np.int64), masks


def _b_label_set(b_labels: Iterable[int], num_names: int) -> frozenset[int]:
    labels = np.asarray(list(b_labels), dtype=np.int64)
    # Category ids passed by mistake (COCO's go up to 90) usually fall out of range here.
    _check_labels(labels, num_names, "b_labels")
    return frozenset(labels.tolist())


class _Style:
    """Line width and caption font for an image size: thin lines on small images, and
    captions that stay small next to the objects they name."""

    def __init__(self, height: int, width: int):
        side = min(height, width)
        self.line = 1 if side < 256 else 2
        self.dash = 5 * self.line
        self.gap = 3 * self.line
        self.pad = 1 if side < 256 else 2
        self.font = _font(int(np.clip(round(side / 55), 11, 18)))


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    # Pillow's built-in scalable font (Aileron); it needs FreeType, which Pillow's wheels have.
    return ImageFont.load_default(size)


def _text_size(font: ImageFont.FreeTypeFont, text: str) -> tuple[int, int]:
    ascent, descent = font.getmetrics()
    # Height from the font's metrics, not the text's ink, so all labels are equally tall.
    return int(np.ceil(font.getlength(text))), ascent + descent


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _fill_mask(pixels: np.ndarray, mask: np.ndarray, colour, line: int) -> None:
    """Blend ``colour`` into the pixels of the boolean ``mask`` and paint its outline."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    y0, y1 = rows[0], rows[-1] + 1
    cols = np.flatnonzero(mask[y0:y1].any(axis=0))
    x0, x1 = cols[0], cols[-1] + 1
    inside = mask[y0:y1, x0:x1]
    region = pixels[y0:y1, x0:x1]
    blended = region[inside] * (1.0 - MASK_ALPHA) + np.multiply(colour, MASK_ALPHA)
    region[inside] = (blended + 0.5).astype(np.uint8)
    # The outline is the mask minus its erosion by ``line`` pixels (4-neighbourhood); the
    # padding is background, so a mask that touches the image border is outlined there.
    interior = inside
    for _ in range(line):
        padded = np.pad(interior, 1)
        interior = (interior & padded[:-2, 1:-1] & padded[2:, 1:-1]
                    & padded[1:-1, :-2] & padded[1:-1, 2:])
    region[inside & ~interior] = colour


def _box_pixels(box: np.ndarray, height: int, width: int, line: int) -> tuple[int, ...]:
    """Inclusive pixel rectangle covering a box. Sides beyond the image end up just outside
    it, where they are not drawn; clipping first keeps huge coordinates out of int64."""
    x1, y1, x2, y2 = box
    lo = -line - 1
    left = int(np.floor(np.clip(x1, lo, width + line)))
    top = int(np.floor(np.clip(y1, lo, height + line)))
    right = max(left, int(np.ceil(np.clip(x2, lo, width + line))) - 1)
    bottom = max(top, int(np.ceil(np.clip(y2, lo, height + line))) - 1)
    return left, top, right, bottom


def _dashes(start: int, stop: int, lo: int, hi: int, style: _Style) -> np.ndarray:
    """Which positions ``lo..hi`` of a side running ``start..stop`` are dashes. Counted from
    the nearer end, so a dash starts at every corner and the box stays closed there."""
    position = np.arange(lo, hi + 1)
    from_end = np.minimum(position - start, stop - position)
    return from_end % (style.dash + style.gap) < style.dash


def _draw_box(pixels: np.ndarray, rect: tuple[int, ...], colour, dashed: bool,
              style: _Style) -> None:
    height, width = pixels.shape[:2]
    left, top, right, bottom = rect
    w = style.line
    # Each side as (rows, columns) of its strip, inside the rectangle, and its direction.
    sides = (
        ((top, top + w - 1), (left, right), True),
        ((bottom - w + 1, bottom), (left, right), True),
        ((top, bottom), (left, left + w - 1), False),
        ((top, bottom), (right - w + 1, right), False),
    )
    for (r0, r1), (c0, c1), horizontal in sides:
        r0, r1 = max(r0, 0), min(r1, height - 1)
        c0, c1 = max(c0, 0), min(c1, width - 1)
        if r0 > r1 or c0 > c1:
            continue
        strip = pixels[r0:r1 + 1, c0:c1 + 1]
        if not dashed:
            strip[:] = colour
        elif horizontal:
            strip[:, _dashes(left, right, c0, c1, style)] = colour
        else:
            strip[_dashes(top, bottom, r0, r1, style)] = colour


def _draw_caption(draw: ImageDraw.ImageDraw, size: tuple[int, int], rect: tuple[int, ...],
                  text: str, colour, style: _Style) -> None:
    """A filled label above the box, or inside its top when there is no room above,
    moved to stay within the image of ``size`` (width, height). Left out when the image
    is smaller than the label."""
    width, height = size
    text_width, text_height = _text_size(style.font, text)
    label_width, label_height = text_width + 2 * style.pad, text_height + 2 * style.pad
    if label_width > width or label_height > height:
        return
    left, top = rect[0], rect[1]
    y = top - label_height if top - label_height >= 0 else max(top, 0)
    y = min(y, height - label_height)
    x = min(max(left, 0), width - label_width)
    draw.rectangle((x, y, x + label_width - 1, y + label_height - 1), fill=colour)
    draw.text((x + style.pad, y + style.pad), text, fill=_text_colour(colour),
              font=style.font, anchor="la")


def _binary(mask: np.ndarray, threshold: float) -> np.ndarray:
    # Float masks are probabilities; bool and integer masks are taken as binary.
    return mask > threshold if mask.dtype.kind == "f" else mask.astype(bool)


def _draw(pixels: np.ndarray, boxes: np.ndarray, masks: Sequence[np.ndarray | None],
          mask_threshold: float, captions: Sequence[str], dashed: Sequence[bool]) -> Image.Image:
    """Draw instances given in order of decreasing importance; the first one ends on top
    and gets the first palette colour. ``masks`` are the instances' [H, W] masks as given
    (None for no mask), binarised one at a time to keep memory at one mask."""
    height, width = pixels.shape[:2]
    style = _Style(height, width)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(boxes))]
    rects = [_box_pixels(box, height, width, style.line) for box in boxes]
    order = range(len(boxes) - 1, -1, -1)
    # Masks, then boxes, then captions, so no fill hides a box and no box hides a caption.
    for i in order:
        if masks[i] is not None:
            _fill_mask(pixels, _binary(masks[i], mask_threshold), colours[i], style.line)
    for i in order:
        _draw_box(pixels, rects[i], colours[i], dashed[i], style)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for i in order:
        _draw_caption(draw, image.size, rects[i], captions[i], colours[i], style)
    return image


def draw_detections(
    image,
    detections: Mapping,
    names: Sequence[str] | CategoryMap,
    b_labels: Iterable[int] = (),
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    max_detections: int | None = None,
) -> Image.Image:
    """The image with the detections scoring at least ``score_threshold`` drawn on it.

    ``detections`` is a torchvision detection dict: ``boxes`` [N, 4] (x1 y1 x2 y2 in
    pixels), ``labels`` [N] (contiguous labels 1..C, ``names[label - 1]`` is the name),
    ``scores`` [N] and optionally ``masks`` [N, 1, H, W] or [N, H, W] at image size
    (probabilities binarised with ``> mask_threshold``, or binary masks). ``names`` is the
    sequence of class names or the ``CategoryMap`` itself. Detections whose label is in
    ``b_labels`` (labels, not category ids) get a dashed box and a " (B)" caption. At most
    ``max_detections`` detections are drawn, the highest-scoring ones, which end on top.
    Captions are left out on images too small to hold them. Returns a new RGB image of
    the input's size; the input is not modified.
    """
    pixels = _to_pixels(image)
    names = _names(names)
    boxes, labels, masks = _instances(detections, pixels.shape[:2], len(names))
    if "scores" not in detections:
        raise ValueError("no 'scores' given")
    scores = to_numpy(detections["scores"]).astype(np.float64).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"{len(scores)} scores for {len(boxes)} boxes")
    if max_detections is not None and max_detections < 0:
        raise ValueError(f"max_detections must be >= 0, got {max_detections}")
    b_set = _b_label_set(b_labels, len(names))
    kept = np.flatnonzero(scores >= score_threshold)
    kept = kept[np.argsort(-scores[kept], kind="stable")][:max_detections]
    return _draw(
        pixels,
        boxes[kept],
        [None if masks is None else masks[i] for i in kept],
        mask_threshold,
        [f"{names[labels[i] - 1]} {scores[i]:.2f}" + (B_SUFFIX if labels[i] in b_set else "")
         for i in kept],
        [labels[i] in b_set for i in kept],
    )


def draw_ground_truth(
    image,
    target: Mapping,
    names: Sequence[str] | CategoryMap,
    b_labels: Iterable[int] = (),
) -> Image.Image:
    """The image with a ground-truth target drawn on it, in ``draw_detections``' look.

    ``target`` is in ``CocoInstanceDataset``'s format: ``boxes``, ``labels``, and
    optionally ``masks`` (uint8 [N, H, W]) and ``has_mask`` (bool [N]). Instances without
    a mask (set B under a partial split) are drawn with their box only; they and those
    with a label in ``b_labels`` are marked as set B. Captions carry no score.
    """
    pixels = _to_pixels(image)
    names = _names(names)
    boxes, labels, masks = _instances(target, pixels.shape[:2], len(names))
    has_mask = np.ones(len(boxes), dtype=bool)
    if target.get("has_mask") is not None:
        has_mask = to_numpy(target["has_mask"]).astype(bool).reshape(-1)
        if len(has_mask) != len(boxes):
            raise ValueError(f"{len(has_mask)} has_mask flags for {len(boxes)} boxes")
    b_set = _b_label_set(b_labels, len(names))
    is_b = [bool(labels[i] in b_set or not has_mask[i]) for i in range(len(boxes))]
    return _draw(
        pixels,
        boxes,
        [masks[i] if masks is not None and has_mask[i] else None for i in range(len(boxes))],
        0.5,
        [names[labels[i] - 1] + (B_SUFFIX if is_b[i] else "") for i in range(len(boxes))],
        is_b,
    )


def _fit_text(font, text: str, width: int) -> str:
    """``text``, shortened with "..." where it is wider than ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..." if text else ""


def _fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Nearest when enlarging, so small drawings stay crisp instead of blurred.
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST
    return image.convert("RGB").resize(size, resample)


def prediction_grid(
    rows: Sequence[Sequence[Image.Image]],
    column_titles: Sequence[str],
    out_path: str | os.PathLike | None = None,
    cell_size: tuple[int, int] = (400, 300),
    row_labels: Sequence[str] | None = None,
) -> Image.Image:
    """A grid of drawn images: one row per image, one column per title.

    Each image is scaled to fit a ``cell_size`` (width, height) cell, keeping its aspect
    ratio, and centred in it on white. Column titles go above the columns and, when given,
    ``row_labels`` (e.g. image ids) to the left of the rows; text too long for its place
    is shortened. The grid's size depends only on the number of rows and columns, the
    cell size and the width of the row labels, not on the images. When ``out_path`` is
    given, the grid is also saved there as PNG.
    """
    cell_width, cell_height = (int(v) for v in cell_size)
    if cell_width < 1 or cell_height < 1:
        raise ValueError(f"cell_size must be positive, got {tuple(cell_size)}")
    if not column_titles:
        raise ValueError("no column titles")
    if not rows:
        raise ValueError("no rows")
    for r, row in enumerate(rows):
        if len(row) != len(column_titles):
            raise ValueError(f"row {r} has {len(row)} images for {len(column_titles)} "
                             "column titles")
        for c, cell in enumerate(row):
            if not isinstance(cell, Image.Image):
                raise TypeError(f"row {r}, column {c} is a {type(cell).__name__}, "
                                "not a PIL image")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"{len(row_labels)} row labels for {len(rows)} rows")

    margin, gap = 16, 8
    font = _font(int(np.clip(cell_height // 16, 12, 24)))
    _, text_height = _text_size(font, "Ag")
    label_width = 0
    if row_labels is not None:
        # As wide as the longest label, but no wider than a cell.
        label_width = min(cell_width, max(_text_size(font, str(t))[0] for t in row_labels))
    grid_left = margin + (label_width + gap if row_labels is not None else 0)
    grid_top = margin + text_height + gap
    columns = len(column_titles)
    size = (grid_left + columns * cell_width + (columns - 1) * gap + margin,
            grid_top + len(rows) * cell_height + (len(rows) - 1) * gap + margin)
    grid = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(grid)
    black = (0, 0, 0)
    for c, title in enumerate(column_titles):
        x = grid_left + c * (cell_width + gap) + cell_width // 2
        draw.text((x, margin), _fit_text(font, str(title), cell_width), fill=black,
                  font=font, anchor="ma")
    for r, row in enumerate(rows):
        y = grid_top + r * (cell_height + gap)
        if row_labels is not None:
            draw.text((margin, y + cell_height // 2),
                      _fit_text(font, str(row_labels[r]), label_width), fill=black,
                      font=font, anchor="lm")
        for c, cell in enumerate(row):
            fitted = _fit_image(cell, cell_width, cell_height)
            x = grid_left + c * (cell_width + gap)
            grid.paste(fitted, (x + (cell_width - fitted.width) // 2,
                                y + (cell_height - fitted.height) // 2))
    if out_path is not None:
        grid.save(out_path, format="PNG")
    return grid
