"""Categories of the synthetic benchmark and its default class split."""

from __future__ import annotations

from maskx.data.synthetic.shapes import SHAPES

# (id, name), ids 1..24 in the fixed class order of SHAPES.
SYNTHETIC_CATEGORIES: tuple[tuple[int, str], ...] = tuple(
    (i + 1, name) for i, name in enumerate(SHAPES)
)

# Default split "synthetic": every other class has masks (set A). Each look-alike family
# (disk/ring/letter C/pac-man, square/frame/window, ...) then has members on both sides,
# so B shapes must be segmented from box-level knowledge plus related A shapes.
SYNTHETIC_SPLIT_A: tuple[str, ...] = tuple(name for i, name in SYNTHETIC_CATEGORIES if i % 2 == 1)
