"""Class splits: which categories have masks in training (set A) and which only boxes (B).

A split is named by a string, resolved against a dataset's category list:

- ``voc``: A = the 20 PASCAL VOC classes of COCO, B = the other 60.
- ``nonvoc``: the reverse.
- ``E{trial}_A{n}B{80-n}``: the paper's 25 random COCO splits, trial 1..5,
  n in 20, 30, 40, 50, 60 (e.g. ``E1_A20B60``).
- ``synthetic``: the synthetic benchmark's default split, two members of every shape
  family in A and two in B, so every B class has relatives in A.
- ``synthetic_disjoint``: the synthetic benchmark's control split, three whole families
  in A and the other three in B, so no B class has a relative in A.
- ``synthetic_A18B6``: three members of every family in A, one in B.
- ``synthetic_composed``: over the synthetic ``composed`` category set, every base
  outline and one of its variants in A, so every B class has its base and its detail
  in A.
- ``synthetic_composed_unseen``: its control, the plain and holed classes in A, so no A
  class shows a B class's detail.
- ``ids:1,2,3``: A = these category ids, B = every other category.
- ``names:person,car``: A = the categories with these names, B = every other category.
- ``all``: every category in A, B empty (full supervision: the oracle).

The COCO splits need COCO's 80 categories (ids and names) and the synthetic splits the
categories of their synthetic category set; asking for either on another category list
fails.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

import numpy as np

from maskx.data.synthetic.categories import SYNTHETIC_SPLITS

# COCO's 80 object categories with their standard ids (the same in COCO 2014 and 2017).
COCO_CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"),
    (6, "bus"), (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"),
    (11, "fire hydrant"), (13, "stop sign"), (14, "parking meter"), (15, "bench"),
    (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (20, "sheep"), (21, "cow"),
    (22, "elephant"), (23, "bear"), (24, "zebra"), (25, "giraffe"), (27, "backpack"),
    (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"), (34, "frisbee"),
    (35, "skis"), (36, "snowboard"), (37, "sports ball"), (38, "kite"),
    (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"), (42, "surfboard"),
    (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"), (48, "fork"),
    (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"),
    (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"), (72, "tv"),
    (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"), (77, "cell phone"),
    (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"), (82, "refrigerator"),
    (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush"),
)
COCO_CATEGORY_IDS: tuple[int, ...] = tuple(cat_id for cat_id, _ in COCO_CATEGORIES)

VOC_CATEGORY_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72,
)
NONVOC_CATEGORY_IDS: tuple[int, ...] = tuple(
    cat_id for cat_id in COCO_CATEGORY_IDS if cat_id not in VOC_CATEGORY_IDS
)

RANDOM_SPLIT_TRIALS = (1, 2, 3, 4, 5)
RANDOM_SPLIT_SIZES = (20, 30, 40, 50, 60)
_RANDOM_SPLIT_SEED = 3

# Full supervision: masks for every class.
ALL_CLASSES = "all"

_RANDOM_SPLIT_NAME = re.compile(r"E\d+_A\d+B\d+")


@functools.cache
def coco_random_splits() -> dict[str, tuple[int, ...]]:
    """The paper's 25 random splits: name -> sorted COCO category ids of set A.

    The reference draws all 25 from one stream seeded once with 3, trial-major, each
    ``choice(80, n_a, replace=False)`` indexing the 80 categories in id order. A private
    ``RandomState`` gives the same stream as the global ``np.random.seed(3)`` without
    touching the caller's global random state.
    """
    rng = np.random.RandomState(_RANDOM_SPLIT_SEED)
    splits = {}
    for trial in RANDOM_SPLIT_TRIALS:
        for n_a in RANDOM_SPLIT_SIZES:
            indices = rng.choice(len(COCO_CATEGORY_IDS), n_a, replace=False)
            name = f"E{trial}_A{n_a}B{len(COCO_CATEGORY_IDS) - n_a}"
            splits[name] = tuple(sorted(COCO_CATEGORY_IDS[i] for i in indices))
    return splits


def split_names() -> list[str]:
    """The named splits (explicit ``ids:`` / ``names:`` lists come on top of these)."""
    return ["voc", "nonvoc", *coco_random_splits(), *SYNTHETIC_SPLITS, ALL_CLASSES]


def _require_category_list(
    name: str, categories: Sequence[Mapping], expected: Sequence[tuple[int, str]], what: str
) -> None:
    have = sorted((int(c["id"]), str(c["name"])) for c in categories)
    if have != sorted(expected):
        missing = sorted(set(expected) - set(have))
        extra = sorted(set(have) - set(expected))
        raise ValueError(
            f"split {name!r} needs {what} ({len(expected)} categories, matching ids and "
            f"names); this dataset has {len(have)} categories, "
            f"{len(missing)} of the expected ones missing (e.g. {missing[:3]}) and "
            f"{len(extra)} others (e.g. {extra[:3]})"
        )


def _parse_list(name: str, body: str) -> list[str]:
    items = [item.strip() for item in body.split(",")]
    if not body.strip() or any(not item for item in items):
        raise ValueError(f"split {name!r}: expected a non-empty comma-separated list")
    return items


def _explicit_a_ids(name: str, categories: Sequence[Mapping]) -> set[int]:
    kind, _, body = name.partition(":")
    if kind == "ids":
        try:
            a_ids = {int(item) for item in _parse_list(name, body)}
        except ValueError as exc:
            raise ValueError(f"split {name!r}: ids must be integers ({exc})") from None
        unknown = sorted(a_ids - {int(c["id"]) for c in categories})
        if unknown:
            raise ValueError(f"split {name!r}: unknown category ids {unknown}")
        return a_ids
    ids_by_name = {str(c["name"]): int(c["id"]) for c in categories}
    names = _parse_list(name, body)
    unknown = [n for n in names if n not in ids_by_name]
    if unknown:
        raise ValueError(f"split {name!r}: unknown category names {unknown}")
    return {ids_by_name[n] for n in names}


def _a_ids(name: str, categories: Sequence[Mapping]) -> set[int]:
    if name == ALL_CLASSES:
        return {int(c["id"]) for c in categories}
    if name.startswith(("ids:", "names:")):
        return _explicit_a_ids(name, categories)
    if name in SYNTHETIC_SPLITS:
        category_set, a_names = SYNTHETIC_SPLITS[name]
        _require_category_list(
            name, categories, category_set.categories,
            f"the synthetic benchmark's {category_set.name!r} categories",
        )
        ids_by_name = {n: i for i, n in category_set.categories}
        return {ids_by_name[n] for n in a_names}
    coco_splits = {"voc": VOC_CATEGORY_IDS, "nonvoc": NONVOC_CATEGORY_IDS,
                   **coco_random_splits()}
    if name in coco_splits:
        _require_category_list(name, categories, COCO_CATEGORIES, "COCO's 80 categories")
        return set(coco_splits[name])
    if _RANDOM_SPLIT_NAME.fullmatch(name):
        raise ValueError(
            f"unknown random split {name!r}: trials are {RANDOM_SPLIT_TRIALS[0]}.."
            f"{RANDOM_SPLIT_TRIALS[-1]}, set A sizes {RANDOM_SPLIT_SIZES}, "
            f"named E{{trial}}_A{{n}}B{{80-n}}"
        )
    raise ValueError(
        f"unknown split {name!r}: use voc, nonvoc, E{{trial}}_A{{n}}B{{80-n}}, "
        f"{', '.join(SYNTHETIC_SPLITS)}, all, ids:ID,ID,... or names:NAME,NAME,..."
    )


def resolve_split(name: str, categories: Sequence[Mapping]) -> tuple[list[int], list[int]]:
    """``(A_ids, B_ids)``, each sorted, for a split name and a COCO category list.

    ``categories`` is the ``categories`` list of a COCO-format dataset (dicts with ``id``
    and ``name``). A and B partition it.
    """
    a_ids = _a_ids(name.strip(), categories)
    all_ids = sorted(int(c["id"]) for c in categories)
    return [i for i in all_ids if i in a_ids], [i for i in all_ids if i not in a_ids]
