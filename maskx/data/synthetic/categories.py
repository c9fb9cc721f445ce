"""Categories of the synthetic benchmark: families, their appearance traits, class splits."""

from __future__ import annotations

from maskx.data.synthetic.shapes import FAMILIES, SHAPES

# (id, name), ids 1..24 in the fixed class order of SHAPES (family-major).
SYNTHETIC_CATEGORIES: tuple[tuple[int, str], ...] = tuple(
    (i + 1, name) for i, name in enumerate(SHAPES)
)

# Category name -> family; written as each category's COCO ``supercategory``.
SYNTHETIC_SUPERCATEGORIES: dict[str, str] = {
    name: family for family, members in FAMILIES.items() for name in members
}

# Family -> the surface pattern kind (textures.PATTERNS) that all its members wear: a
# trait the box head can key on, so that related classes get related detector weights.
FAMILY_PATTERNS: dict[str, str] = {
    "round": "spots",
    "square": "checker",
    "triangle": "horizontal_stripes",
    "plus": "vertical_stripes",
    "star": "rings",
    "bars": "diagonal_stripes",
}

# Default split "synthetic": two members of every family have masks (set A), the other
# two only boxes (set B), so every B class has two relatives in A. Each family keeps its
# base shape in A; the details split so that holes, missing parts and changed
# proportions all occur on both sides, and T can learn on A what a detail does to a mask.
SYNTHETIC_SPLIT_A: tuple[str, ...] = (
    "disk", "ring",
    "square", "notched_square",
    "triangle", "holed_triangle",
    "plus", "thin_plus",
    "star_5", "holed_star",
    "letter_l", "letter_h",
)

# Split "synthetic_A18B6": three members of every family in A, the default split's B
# classes pacman, window, arrowhead, latin_cross, star_4 and letter_e joining them, so T
# learns from 18 classes (as the paper's non-VOC -> VOC direction learns from 60 of 80)
# and every B class has three relatives with masks.
SYNTHETIC_A18B6_SPLIT_A: tuple[str, ...] = (
    "disk", "ring", "pacman",
    "square", "notched_square", "window",
    "triangle", "holed_triangle", "arrowhead",
    "plus", "thin_plus", "latin_cross",
    "star_5", "holed_star", "star_4",
    "letter_l", "letter_h", "letter_e",
)

# Control split "synthetic_disjoint": whole families in A (the curved and pointed ones)
# and in B (the rectilinear ones), so no B class has a relative in A. The gap between the
# two splits measures what T draws from related classes.
SYNTHETIC_DISJOINT_FAMILIES_A: tuple[str, ...] = ("round", "triangle", "star")
SYNTHETIC_DISJOINT_SPLIT_A: tuple[str, ...] = tuple(
    name for family in SYNTHETIC_DISJOINT_FAMILIES_A for name in FAMILIES[family]
)

# Split name -> category names of set A, as resolved by ``maskx.data.splits``.
SYNTHETIC_SPLITS: dict[str, tuple[str, ...]] = {
    "synthetic": SYNTHETIC_SPLIT_A,
    "synthetic_disjoint": SYNTHETIC_DISJOINT_SPLIT_A,
    "synthetic_A18B6": SYNTHETIC_A18B6_SPLIT_A,
}
