"""Categories of the synthetic benchmark: category sets, their appearance traits, class splits.

Two category sets, each 24 classes in 6 families of 4: ``families`` (the benchmark's
default, ``shapes.py``: each family's members differ in details of their own) and
``composed`` (``composed.py``: six base outlines, each in the same four variants).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from maskx.data.synthetic.composed import COMPOSED_FAMILIES, COMPOSED_SHAPES, COMPOSED_VARIANT_OF
from maskx.data.synthetic.shapes import FAMILIES, SHAPES, ShapeFn


@dataclass(frozen=True)
class CategorySet:
    """The classes a synthetic data set draws from: masks, families and their patterns."""

    name: str
    shapes: dict[str, ShapeFn]  # class name -> mask, in category-id order
    families: dict[str, tuple[str, ...]]  # family -> member class names
    # Family -> the surface pattern kind (textures.PATTERNS) that all its members wear: a
    # trait the box head can key on, so that related classes get related detector weights.
    patterns: dict[str, str]

    @cached_property
    def categories(self) -> tuple[tuple[int, str], ...]:
        """(id, name), ids 1..N in the order of ``shapes`` (family-major)."""
        return tuple((i + 1, name) for i, name in enumerate(self.shapes))

    @cached_property
    def supercategories(self) -> dict[str, str]:
        """Class name -> family, written as each category's COCO ``supercategory``."""
        return {name: family for family, members in self.families.items() for name in members}


FAMILIES_SET = CategorySet("families", SHAPES, FAMILIES, {
    "round": "spots",
    "square": "checker",
    "triangle": "horizontal_stripes",
    "plus": "vertical_stripes",
    "star": "rings",
    "bars": "diagonal_stripes",
})

COMPOSED_SET = CategorySet("composed", COMPOSED_SHAPES, COMPOSED_FAMILIES, {
    "disk": "spots",
    "square": "checker",
    "triangle": "horizontal_stripes",
    "plus": "vertical_stripes",
    "star": "rings",
    "diamond": "diagonal_stripes",
})

CATEGORY_SETS: dict[str, CategorySet] = {s.name: s for s in (FAMILIES_SET, COMPOSED_SET)}


def category_set(name: str) -> CategorySet:
    """The category set called ``name``; a ValueError naming the choices otherwise."""
    if name not in CATEGORY_SETS:
        raise ValueError(f"unknown category set {name!r}: expected one of {', '.join(CATEGORY_SETS)}")
    return CATEGORY_SETS[name]


# The default set's categories, supercategories and patterns.
SYNTHETIC_CATEGORIES: tuple[tuple[int, str], ...] = FAMILIES_SET.categories
SYNTHETIC_SUPERCATEGORIES: dict[str, str] = FAMILIES_SET.supercategories
FAMILY_PATTERNS: dict[str, str] = FAMILIES_SET.patterns

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


# Split "synthetic_composed": every base's plain outline and one of its variants in A, each
# variant in A on two bases. So every B class has its base and its detail in A, on
# different classes.
SYNTHETIC_COMPOSED_SPLIT_A: tuple[str, ...] = (
    "disk", "holed_disk",
    "square", "notched_square",
    "triangle", "split_triangle",
    "plus", "holed_plus",
    "star", "notched_star",
    "diamond", "split_diamond",
)

# Control split "synthetic_composed_unseen": the plain and holed classes in A, the notched
# and split ones in B, so no class with masks shows a B class's detail.
SYNTHETIC_COMPOSED_UNSEEN_SPLIT_A: tuple[str, ...] = tuple(
    name for name in COMPOSED_SHAPES if COMPOSED_VARIANT_OF[name] in ("plain", "holed")
)

# Split name -> (the category set it is over, category names of set A), as resolved by
# ``maskx.data.splits``.
SYNTHETIC_SPLITS: dict[str, tuple[CategorySet, tuple[str, ...]]] = {
    "synthetic": (FAMILIES_SET, SYNTHETIC_SPLIT_A),
    "synthetic_disjoint": (FAMILIES_SET, SYNTHETIC_DISJOINT_SPLIT_A),
    "synthetic_A18B6": (FAMILIES_SET, SYNTHETIC_A18B6_SPLIT_A),
    "synthetic_composed": (COMPOSED_SET, SYNTHETIC_COMPOSED_SPLIT_A),
    "synthetic_composed_unseen": (COMPOSED_SET, SYNTHETIC_COMPOSED_UNSEEN_SPLIT_A),
}
