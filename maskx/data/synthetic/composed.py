"""The composed category set: six base outlines, each in four variants shared by all bases.

In the ``families`` set (``shapes.py``) each family's details are its own: a window's four
panes or an E's middle bar occur in no other family, so when such a class is in B no
class with masks shows its detail, and nothing can carry it over. Here every detail is
one operation applied to every base outline: a centred hole, a missing quadrant, a cut
through the middle. Under the split ``synthetic_composed`` a B class such as
``notched_triangle`` has its base (``triangle``) and its detail (``notched_square``,
``notched_star``) in A, as COCO's B classes share parts with A classes of other
supercategories (legs, wheels, handles). Whether T composes the two is the question this
set asks; ``synthetic_composed_unseen`` is its control, whose B details occur in no A
class at all.

Shapes follow ``shapes.py``'s convention: implicit functions of normalised object
coordinates, the object spanning about [-1, 1], y pointing down.
"""

from __future__ import annotations

import numpy as np

from maskx.data.synthetic.shapes import (
    TRIANGLE_CENTROID,
    ShapeFn,
    disk,
    full_star_5,
    plus,
    square,
    triangle,
)


def _diamond(x, y):
    return np.abs(x) + np.abs(y) <= 1.0


# Base name -> (outline, the centre that the variants' details are placed about: the
# centroid, so a triangle's hole and cut sit in its body, not near its apex).
BASES: dict[str, tuple[ShapeFn, tuple[float, float]]] = {
    "disk": (disk, (0.0, 0.0)),
    "square": (square, (0.0, 0.0)),
    "triangle": (triangle, tuple(TRIANGLE_CENTROID)),
    "plus": (plus, (0.0, 0.0)),
    # Fuller than the families set's star_5, so a centred hole leaves a rim a few px wide.
    "star": (full_star_5, (0.0, 0.0)),
    "diamond": (_diamond, (0.0, 0.0)),
}

# Each variant removes a fifth to two fifths of a base's area (most often a quarter), so
# it changes the mask about as much as the families set's details do.
_HOLE_SCALE = 0.5  # the hole is the base outline at half size
_CUT_HALF_WIDTH = 0.2  # the cut is a horizontal band 0.4 high


def _variant(variant: str, base: ShapeFn, centre: tuple[float, float]) -> ShapeFn:
    cx, cy = centre
    if variant == "plain":
        return base
    if variant == "holed":
        def shape(x, y):
            return base(x, y) & ~base(cx + (x - cx) / _HOLE_SCALE, cy + (y - cy) / _HOLE_SCALE)
    elif variant == "notched":
        def shape(x, y):
            return base(x, y) & ~((x > cx) & (y < cy))
    elif variant == "split":
        def shape(x, y):
            return base(x, y) & ~(np.abs(y - cy) < _CUT_HALF_WIDTH)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return shape


# Variant order within a base; "plain" first, like each family's base shape.
VARIANTS: tuple[str, ...] = ("plain", "holed", "notched", "split")


def _name(variant: str, base: str) -> str:
    return base if variant == "plain" else f"{variant}_{base}"


# Base -> its four classes, and class name -> mask, in the fixed class order (base-major):
# never reorder, the order fixes the category ids.
COMPOSED_FAMILIES: dict[str, tuple[str, ...]] = {
    base: tuple(_name(variant, base) for variant in VARIANTS) for base in BASES
}
COMPOSED_SHAPES: dict[str, ShapeFn] = {
    _name(variant, base): _variant(variant, fn, centre)
    for base, (fn, centre) in BASES.items() for variant in VARIANTS
}
# Class name -> its variant, for splits that pick classes by detail.
COMPOSED_VARIANT_OF: dict[str, str] = {
    _name(variant, base): variant for base in BASES for variant in VARIANTS
}
