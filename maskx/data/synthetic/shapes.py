"""The synthetic benchmark's object classes: 6 families of 4 shapes, one binary shape each.

Each shape is an implicit function of normalised object coordinates ``(x, y)`` (arrays
of equal shape, the object spanning about [-1, 1] on both axes, y pointing down) that
returns the object's mask.

The members of a family share a base outline and differ in one detail that changes the
mask and stays readable from about 30 px up: a hole, a missing part, an extra or moved
part, or clearly different proportions. A class without mask labels thus has relatives
whose masks are labelled, as zebra has horse in COCO, yet its own mask differs from
theirs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def inside_polygon(x: np.ndarray, y: np.ndarray, vertices) -> np.ndarray:
    """Even-odd rule, vectorised over points, one pass per polygon edge."""
    vertices = np.asarray(vertices, dtype=np.float64)
    inside = np.zeros(np.shape(x), dtype=bool)
    x_prev, y_prev = vertices[-1]
    for x_cur, y_cur in vertices:
        crosses = (y_cur > y) != (y_prev > y)
        if y_cur != y_prev:
            x_at_y = x_cur + (y - y_cur) * (x_prev - x_cur) / (y_prev - y_cur)
            inside ^= crosses & (x < x_at_y)
        x_prev, y_prev = x_cur, y_cur
    return inside


def star_polygon(points: int, inner_radius: float, phase: float) -> np.ndarray:
    """Vertices of a star with tips at radius 1, the first tip at angle ``phase``."""
    angles = phase + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner_radius)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def box(x, y, x0, x1, y0, y1) -> np.ndarray:
    """The axis-aligned rectangle [x0, x1] x [y0, y1]."""
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def _radius(x, y) -> np.ndarray:
    return np.hypot(x, y)


# Round family: a disk, and a disk with a hole, a missing wedge or four small holes.


def disk(x, y):
    return _radius(x, y) <= 1.0


def ring(x, y):
    r = _radius(x, y)
    return (r <= 1.0) & (r >= 0.5)


def pacman(x, y):
    # A 90-degree mouth: wide enough to read at 30 px.
    return disk(x, y) & ~((x > 0) & (np.abs(y) < x))


def button(x, y):
    holes = np.zeros(np.shape(x), dtype=bool)
    for hx in (-0.4, 0.4):
        for hy in (-0.4, 0.4):
            holes |= np.hypot(x - hx, y - hy) <= 0.24
    return disk(x, y) & ~holes


# Square family: a square, a frame (one large hole), a window (four panes) and a square
# with one corner cut away.


def square(x, y):
    return np.maximum(np.abs(x), np.abs(y)) <= 0.9


def square_frame(x, y):
    m = np.maximum(np.abs(x), np.abs(y))
    return (m <= 0.9) & (m >= 0.5)


def window(x, y):
    ax, ay = np.abs(x), np.abs(y)
    panes = (ax >= 0.17) & (ax <= 0.68) & (ay >= 0.17) & (ay <= 0.68)
    return square(x, y) & ~panes


def notched_square(x, y):
    return square(x, y) & ~((x > 0.0) & (y < 0.0))


# Triangle family: a triangle, one with a triangular hole, an arrowhead (a notch cut
# into the base) and a trapezoid (the apex cut off wide).

_TRIANGLE = np.array([(0.0, -0.95), (0.95, 0.85), (-0.95, 0.85)])
TRIANGLE_CENTROID = _TRIANGLE.mean(axis=0)


def triangle(x, y):
    return inside_polygon(x, y, _TRIANGLE)


def holed_triangle(x, y):
    hole = TRIANGLE_CENTROID + 0.5 * (_TRIANGLE - TRIANGLE_CENTROID)
    return triangle(x, y) & ~inside_polygon(x, y, hole)


def arrowhead(x, y):
    return triangle(x, y) & ~inside_polygon(x, y, [(-0.95, 0.85), (0.0, 0.1), (0.95, 0.85)])


def trapezoid(x, y):
    return inside_polygon(x, y, [(-0.4, -0.85), (0.4, -0.85), (0.95, 0.85), (-0.95, 0.85)])


# Plus family: a plus, a thin-armed plus, a Latin cross (the cross bar moved up) and a T
# (the cross bar at the top).

_ARM = 0.3
_THIN_ARM = 0.14


def plus(x, y):
    ax, ay = np.abs(x), np.abs(y)
    return ((ax <= _ARM) & (ay <= 0.95)) | ((ay <= _ARM) & (ax <= 0.95))


def thin_plus(x, y):
    ax, ay = np.abs(x), np.abs(y)
    return ((ax <= _THIN_ARM) & (ay <= 0.95)) | ((ay <= _THIN_ARM) & (ax <= 0.95))


def latin_cross(x, y):
    return box(x, y, -_ARM, _ARM, -0.95, 0.95) | box(x, y, -0.95, 0.95, -0.65, -0.05)


def tee(x, y):
    return box(x, y, -_ARM, _ARM, -0.95, 0.95) | box(x, y, -0.95, 0.95, -0.95, -0.35)


# Star family: five, four and six points, and a fuller five-pointed star with a hole.

_STAR_5 = star_polygon(5, 0.42, -np.pi / 2)
# Tips on the diagonals, so that the 4-point star is not a thin plus.
_STAR_4 = star_polygon(4, 0.36, np.pi / 4)
_STAR_6 = star_polygon(6, 0.55, -np.pi / 2)
_FULL_STAR_5 = star_polygon(5, 0.52, -np.pi / 2)


def star_5(x, y):
    return inside_polygon(x, y, _STAR_5)


def star_4(x, y):
    return inside_polygon(x, y, _STAR_4)


def star_6(x, y):
    return inside_polygon(x, y, _STAR_6)


def full_star_5(x, y):
    return inside_polygon(x, y, _FULL_STAR_5)


def holed_star(x, y):
    # Fuller than star_5 so that the ring of star around the hole stays a few px wide.
    return full_star_5(x, y) & (_radius(x, y) >= 0.28)


# Bar-letter family: L, E, H and U from bars of one width in one frame.

_LEFT = (-0.8, -0.4)
_RIGHT = (0.4, 0.8)
_TOP = (-0.95, -0.55)
_MIDDLE = (-0.2, 0.2)
_BOTTOM = (0.55, 0.95)


def letter_l(x, y):
    return box(x, y, *_LEFT, -0.95, 0.95) | box(x, y, -0.8, 0.8, *_BOTTOM)


def letter_e(x, y):
    return (
        box(x, y, *_LEFT, -0.95, 0.95)
        | box(x, y, -0.8, 0.8, *_TOP)
        | box(x, y, -0.8, 0.6, *_MIDDLE)
        | box(x, y, -0.8, 0.8, *_BOTTOM)
    )


def letter_h(x, y):
    return (
        box(x, y, *_LEFT, -0.95, 0.95)
        | box(x, y, *_RIGHT, -0.95, 0.95)
        | box(x, y, -0.8, 0.8, *_MIDDLE)
    )


def letter_u(x, y):
    return (
        box(x, y, *_LEFT, -0.95, 0.95)
        | box(x, y, *_RIGHT, -0.95, 0.95)
        | box(x, y, -0.8, 0.8, *_BOTTOM)
    )


# Family -> member shapes, base shape first. The order fixes the category ids (1-based,
# family-major) of the benchmark: never reorder.
_FAMILY_SHAPES: dict[str, tuple[ShapeFn, ...]] = {
    "round": (disk, ring, pacman, button),
    "square": (square, square_frame, window, notched_square),
    "triangle": (triangle, holed_triangle, arrowhead, trapezoid),
    "plus": (plus, thin_plus, latin_cross, tee),
    "star": (star_5, star_4, star_6, holed_star),
    "bars": (letter_l, letter_e, letter_h, letter_u),
}

FAMILIES: dict[str, tuple[str, ...]] = {
    family: tuple(fn.__name__ for fn in shapes) for family, shapes in _FAMILY_SHAPES.items()
}
SHAPES: dict[str, ShapeFn] = {
    fn.__name__: fn for shapes in _FAMILY_SHAPES.values() for fn in shapes
}
