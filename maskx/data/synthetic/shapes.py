"""The synthetic benchmark's object classes: one binary shape per class.

Each shape is an implicit function of normalised object coordinates ``(x, y)`` (arrays
of equal shape, the object spanning about [-1, 1] on both axes, y pointing down) that
returns the object's mask. The classes are chosen so that the box alone does not tell
them apart: disk / ring / letter C / pac-man, square / frame / window, shapes with holes,
letters and other concave outlines.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _inside_polygon(x: np.ndarray, y: np.ndarray, vertices) -> np.ndarray:
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


def _regular_polygon(sides: int, radius: float, phase: float) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(sides) / sides
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _box(x, y, x0, x1, y0, y1) -> np.ndarray:
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def _radius(x, y) -> np.ndarray:
    return np.hypot(x, y)


def disk(x, y):
    return _radius(x, y) <= 1.0


def ring(x, y):
    r = _radius(x, y)
    return (r <= 1.0) & (r >= 0.55)


def square(x, y):
    return np.maximum(np.abs(x), np.abs(y)) <= 0.9


def square_frame(x, y):
    m = np.maximum(np.abs(x), np.abs(y))
    return (m <= 0.9) & (m >= 0.5)


def triangle(x, y):
    return _inside_polygon(x, y, [(0.0, -0.95), (0.95, 0.85), (-0.95, 0.85)])


def cross(x, y):
    ax, ay = np.abs(x), np.abs(y)
    return ((ax <= 0.3) & (ay <= 0.95)) | ((ay <= 0.3) & (ax <= 0.95))


_STAR_ANGLES = -np.pi / 2 + np.arange(10) * np.pi / 5
_STAR_RADII = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
_STAR = np.stack([_STAR_RADII * np.cos(_STAR_ANGLES), _STAR_RADII * np.sin(_STAR_ANGLES)], 1)


def star(x, y):
    return _inside_polygon(x, y, _STAR)


def crescent(x, y):
    return (_radius(x, y) <= 1.0) & (np.hypot(x - 0.45, y) > 0.8)


def heart(x, y):
    # The classic implicit heart curve, flipped so that the point is at the bottom.
    hx, hy = 1.15 * x, -1.2 * y + 0.25
    return (hx**2 + hy**2 - 1.0) ** 3 - hx**2 * hy**3 <= 0.0


def letter_l(x, y):
    return _box(x, y, -0.8, -0.35, -0.95, 0.95) | _box(x, y, -0.8, 0.8, 0.5, 0.95)


def letter_t(x, y):
    return _box(x, y, -0.9, 0.9, -0.95, -0.5) | _box(x, y, -0.22, 0.22, -0.95, 0.95)


def letter_c(x, y):
    return ring(x, y) & ~((x > 0) & (np.abs(y) < 0.7 * x))


def letter_e(x, y):
    return (
        _box(x, y, -0.8, -0.4, -0.95, 0.95)
        | _box(x, y, -0.8, 0.8, -0.95, -0.6)
        | _box(x, y, -0.8, 0.6, -0.18, 0.18)
        | _box(x, y, -0.8, 0.8, 0.6, 0.95)
    )


def letter_h(x, y):
    return (
        _box(x, y, -0.85, -0.45, -0.95, 0.95)
        | _box(x, y, 0.45, 0.85, -0.95, 0.95)
        | _box(x, y, -0.85, 0.85, -0.2, 0.2)
    )


def arrow(x, y):
    return _inside_polygon(
        x,
        y,
        [(-0.95, -0.25), (0.15, -0.25), (0.15, -0.75), (0.95, 0.0), (0.15, 0.75),
         (0.15, 0.25), (-0.95, 0.25)],
    )


_HEXAGON = _regular_polygon(6, 1.0, 0.0)


def hexagon(x, y):
    return _inside_polygon(x, y, _HEXAGON)


def button(x, y):
    holes = np.zeros(np.shape(x), dtype=bool)
    for hx in (-0.38, 0.38):
        for hy in (-0.38, 0.38):
            holes |= np.hypot(x - hx, y - hy) <= 0.2
    return disk(x, y) & ~holes


def dome(x, y):
    # Half an ellipse standing on its flat side.
    return (x**2 + ((y - 0.95) / 1.9) ** 2 <= 1.0) & (y <= 0.95)


def gear(x, y):
    r = _radius(x, y)
    teeth = np.cos(8 * np.arctan2(y, x)) > 0.0
    return (r <= np.where(teeth, 0.98, 0.72)) & (r >= 0.25)


def bowtie(x, y):
    return _inside_polygon(
        x, y, [(-0.95, -0.85), (0.0, -0.12), (0.95, -0.85), (0.95, 0.85), (0.0, 0.12),
               (-0.95, 0.85)]
    )


def chevron(x, y):
    return _inside_polygon(
        x, y, [(-0.95, -0.9), (0.0, 0.1), (0.95, -0.9), (0.95, -0.2), (0.0, 0.9),
               (-0.95, -0.2)]
    )


def pacman(x, y):
    return disk(x, y) & ~((x > 0) & (np.abs(y) < 0.7 * x))


def clover(x, y):
    leaves = np.hypot(x, y) <= 0.35
    for angle in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6):
        leaves |= np.hypot(x - 0.5 * np.cos(angle), y - 0.5 * np.sin(angle)) <= 0.48
    return leaves


def window(x, y):
    ax, ay = np.abs(x), np.abs(y)
    panes = (ax >= 0.15) & (ax <= 0.72) & (ay >= 0.15) & (ay <= 0.72)
    return square(x, y) & ~panes


# Class order fixes the category ids (1-based) of the benchmark: never reorder.
SHAPES: dict[str, ShapeFn] = {
    "disk": disk,
    "ring": ring,
    "square": square,
    "square_frame": square_frame,
    "triangle": triangle,
    "cross": cross,
    "star": star,
    "crescent": crescent,
    "heart": heart,
    "letter_l": letter_l,
    "letter_t": letter_t,
    "letter_c": letter_c,
    "letter_e": letter_e,
    "letter_h": letter_h,
    "arrow": arrow,
    "hexagon": hexagon,
    "button": button,
    "dome": dome,
    "gear": gear,
    "bowtie": bowtie,
    "chevron": chevron,
    "pacman": pacman,
    "clover": clover,
    "window": window,
}
