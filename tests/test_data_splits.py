import numpy as np
import pytest

from maskx.data.categories import CategoryMap
from maskx.data.splits import (
    COCO_CATEGORIES,
    COCO_CATEGORY_IDS,
    NONVOC_CATEGORY_IDS,
    VOC_CATEGORY_IDS,
    coco_random_splits,
    resolve_split,
    split_names,
)
from maskx.data.synthetic import (
    COMPOSED_SET,
    FAMILIES,
    SYNTHETIC_A18B6_SPLIT_A,
    SYNTHETIC_CATEGORIES,
    SYNTHETIC_DISJOINT_SPLIT_A,
    SYNTHETIC_SPLIT_A,
    SYNTHETIC_SUPERCATEGORIES,
)

COCO_CATS = [{"id": i, "name": n, "supercategory": "x"} for i, n in COCO_CATEGORIES]
SYNTHETIC_CATS = [{"id": i, "name": n} for i, n in SYNTHETIC_CATEGORIES]
COMPOSED_CATS = [{"id": i, "name": n} for i, n in COMPOSED_SET.categories]


def test_coco_has_80_categories_with_standard_ids():
    assert len(COCO_CATEGORY_IDS) == 80
    missing = sorted(set(range(1, 91)) - set(COCO_CATEGORY_IDS))
    assert missing == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]


def test_voc_split_is_exact():
    assert list(VOC_CATEGORY_IDS) == [
        1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72]
    names = dict(COCO_CATEGORIES)
    assert {names[i] for i in VOC_CATEGORY_IDS} == {
        "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "boat", "bird",
        "cat", "dog", "horse", "sheep", "cow", "bottle", "chair", "couch", "potted plant",
        "dining table", "tv"}
    a, b = resolve_split("voc", COCO_CATS)
    assert a == list(VOC_CATEGORY_IDS)
    assert b == list(NONVOC_CATEGORY_IDS) and len(b) == 60
    assert resolve_split("nonvoc", COCO_CATS) == (b, a)


def test_random_splits_equal_a_direct_rerun_of_the_reference_procedure():
    saved = np.random.get_state()
    try:
        np.random.seed(3)
        expected = {}
        for trial in range(1, 6):
            for n_a in (20, 30, 40, 50, 60):
                indices = np.random.choice(80, n_a, replace=False)
                ids = sorted(COCO_CATEGORY_IDS[i] for i in indices)
                expected[f"E{trial}_A{n_a}B{80 - n_a}"] = ids
    finally:
        np.random.set_state(saved)
    splits = coco_random_splits()
    assert list(splits) == list(expected)
    for name, ids in expected.items():
        a, b = resolve_split(name, COCO_CATS)
        assert a == ids == list(splits[name])
        assert sorted(a + b) == list(COCO_CATEGORY_IDS)
    # Distinct draws: not one split repeated.
    assert len({tuple(v) for v in expected.values()}) == 25


def test_random_splits_leave_global_numpy_state_alone():
    coco_random_splits.cache_clear()
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    coco_random_splits()
    assert np.random.random() == before


@pytest.mark.parametrize("name", ["E6_A20B60", "E1_A25B55", "E1_A20B50", "E0_A20B60"])
def test_unknown_random_split_fails(name):
    with pytest.raises(ValueError, match="unknown random split"):
        resolve_split(name, COCO_CATS)


@pytest.mark.parametrize("name", ["voc", "nonvoc", "E1_A20B60"])
def test_coco_splits_refuse_other_category_lists(name):
    with pytest.raises(ValueError, match="COCO's 80 categories"):
        resolve_split(name, SYNTHETIC_CATS)
    renamed = [dict(c, name="thing") if c["id"] == 1 else c for c in COCO_CATS]
    with pytest.raises(ValueError, match="COCO's 80 categories"):
        resolve_split(name, renamed)


def _families_of(ids: list[int]) -> list[str]:
    names = dict(SYNTHETIC_CATEGORIES)
    return [SYNTHETIC_SUPERCATEGORIES[names[i]] for i in ids]


@pytest.mark.parametrize("name, a_names", [("synthetic", SYNTHETIC_SPLIT_A),
                                           ("synthetic_disjoint", SYNTHETIC_DISJOINT_SPLIT_A)])
def test_synthetic_splits_by_name(name, a_names):
    a, b = resolve_split(name, SYNTHETIC_CATS)
    names = dict(SYNTHETIC_CATEGORIES)
    assert [names[i] for i in a] == list(a_names)
    assert len(a) == len(b) == 12 and sorted(a + b) == list(range(1, 25))
    with pytest.raises(ValueError, match="synthetic benchmark's 'families' categories"):
        resolve_split(name, COCO_CATS)


def test_synthetic_split_gives_every_b_class_relatives_in_a():
    a, b = resolve_split("synthetic", SYNTHETIC_CATS)
    for family in FAMILIES:
        assert _families_of(a).count(family) == _families_of(b).count(family) == 2, family


def test_synthetic_a18b6_split_gives_every_b_class_three_relatives_in_a():
    a, b = resolve_split("synthetic_A18B6", SYNTHETIC_CATS)
    names = dict(SYNTHETIC_CATEGORIES)
    assert sorted(names[i] for i in a) == sorted(SYNTHETIC_A18B6_SPLIT_A)
    assert len(a) == 18 and len(b) == 6 and sorted(a + b) == list(range(1, 25))
    for family in FAMILIES:
        assert _families_of(a).count(family) == 3 and _families_of(b).count(family) == 1, family
    # Its B classes are B classes of the default split too, so the two compare on them.
    assert set(b) < set(resolve_split("synthetic", SYNTHETIC_CATS)[1])


def test_synthetic_disjoint_split_gives_no_b_class_a_relative():
    a, b = resolve_split("synthetic_disjoint", SYNTHETIC_CATS)
    a_families, b_families = set(_families_of(a)), set(_families_of(b))
    assert len(a_families) == len(b_families) == 3 and not a_families & b_families


def _composed_names(ids: list[int]) -> list[str]:
    return [dict(COMPOSED_SET.categories)[i] for i in ids]


def test_synthetic_composed_split_shows_every_b_class_its_base_and_its_detail_in_a():
    from maskx.data.synthetic.composed import COMPOSED_VARIANT_OF

    a, b = resolve_split("synthetic_composed", COMPOSED_CATS)
    assert len(a) == len(b) == 12 and sorted(a + b) == list(range(1, 25))
    a_names, b_names = _composed_names(a), _composed_names(b)
    families = COMPOSED_SET.supercategories
    for name in b_names:
        variant, base = COMPOSED_VARIANT_OF[name], families[name]
        assert base in a_names, name  # the plain outline
        others = [n for n in a_names if COMPOSED_VARIANT_OF[n] == variant and families[n] != base]
        assert len(others) == 2, (name, others)  # the detail, on two other bases
    for family in COMPOSED_SET.families:
        assert [families[n] for n in a_names].count(family) == 2, family
    with pytest.raises(ValueError, match="'composed' categories"):
        resolve_split("synthetic_composed", SYNTHETIC_CATS)
    with pytest.raises(ValueError, match="'families' categories"):
        resolve_split("synthetic", COMPOSED_CATS)


def test_synthetic_composed_unseen_split_shows_no_b_detail_in_a():
    from maskx.data.synthetic.composed import COMPOSED_VARIANT_OF

    a, b = resolve_split("synthetic_composed_unseen", COMPOSED_CATS)
    assert len(a) == len(b) == 12
    a_variants = {COMPOSED_VARIANT_OF[n] for n in _composed_names(a)}
    b_variants = {COMPOSED_VARIANT_OF[n] for n in _composed_names(b)}
    assert a_variants == {"plain", "holed"} and b_variants == {"notched", "split"}
    # Both composed splits share their B classes' bases, and half their B classes.
    b_composed = set(resolve_split("synthetic_composed", COMPOSED_CATS)[1])
    assert len(set(b) & b_composed) == 8


def test_explicit_lists():
    a, b = resolve_split("ids:3, 1", SYNTHETIC_CATS)
    assert a == [1, 3] and b == [i for i in range(2, 25) if i != 3]
    a, b = resolve_split("names:person,potted plant", COCO_CATS)
    assert a == [1, 64] and len(b) == 78


@pytest.mark.parametrize("name, message", [
    ("ids:1,99", "unknown category ids"),
    ("ids:", "non-empty"),
    ("ids:1,,2", "non-empty"),
    ("ids:one", "integers"),
    ("names:disk,unicorn", "unknown category names"),
    ("vocc", "unknown split"),
])
def test_bad_split_names(name, message):
    with pytest.raises(ValueError, match=message):
        resolve_split(name, SYNTHETIC_CATS)


def test_split_names_lists_every_named_split():
    names = split_names()
    assert names[:2] == ["voc", "nonvoc"] and len(names) == 33
    synthetic = ["synthetic", "synthetic_disjoint", "synthetic_A18B6", "synthetic_composed",
                 "synthetic_composed_unseen"]
    assert names[-6:] == [*synthetic, "all"]
    for name in names[:-6]:
        resolve_split(name, COCO_CATS)
    for name in synthetic:
        resolve_split(name, COMPOSED_CATS if "composed" in name else SYNTHETIC_CATS)


def test_split_all_is_full_supervision():
    assert resolve_split("all", COCO_CATS) == (sorted(c["id"] for c in COCO_CATS), [])
    assert resolve_split(" all ", SYNTHETIC_CATS)[1] == []


def test_category_map_round_trip():
    category_map = CategoryMap(COCO_CATS[::-1])
    assert category_map.num_classes == 81
    assert category_map.label(1) == 1 and category_map.label(90) == 80
    assert category_map.category_id(80) == 90
    labels = np.arange(1, 81)
    assert category_map.category_ids_of(labels).tolist() == list(COCO_CATEGORY_IDS)
    assert [category_map.label(i) for i in COCO_CATEGORY_IDS] == labels.tolist()
    in_voc = category_map.label_mask(VOC_CATEGORY_IDS)
    assert in_voc.shape == (81,) and in_voc.sum() == 20 and not in_voc[0]
    assert in_voc[category_map.label(72)]
    with pytest.raises(KeyError):
        category_map.label(12)
    with pytest.raises(KeyError):
        category_map.category_ids_of([0, 1])
    with pytest.raises(KeyError):
        category_map.category_id(81)
