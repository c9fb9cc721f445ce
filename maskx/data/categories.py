"""Mapping between a dataset's category ids and the contiguous labels a detector uses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


class CategoryMap:
    """Contiguous labels ``1..C`` for the categories of a COCO-format dataset.

    Label 0 is the background, as in torchvision's detection models, so a model for this
    dataset has ``num_classes = C + 1`` outputs. Labels follow the category ids in
    increasing order, which makes the mapping a function of the category list alone.
    """

    def __init__(self, categories: Sequence[Mapping]):
        ordered = sorted(categories, key=lambda c: c["id"])
        self.category_ids: tuple[int, ...] = tuple(int(c["id"]) for c in ordered)
        self.names: tuple[str, ...] = tuple(str(c["name"]) for c in ordered)
        if len(set(self.category_ids)) != len(self.category_ids):
            raise ValueError("category ids must be unique")
        self._label_of = {cat_id: i + 1 for i, cat_id in enumerate(self.category_ids)}
        # Index = label; entry 0 (background) maps to no category.
        self._id_of_label = np.array((-1,) + self.category_ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.category_ids)

    def __repr__(self) -> str:
        return f"CategoryMap({len(self)} categories)"

    @property
    def num_classes(self) -> int:
        """Number of detector outputs, background included."""
        return len(self.category_ids) + 1

    def label(self, category_id: int) -> int:
        try:
            return self._label_of[int(category_id)]
        except KeyError:
            raise KeyError(f"unknown category id {category_id}") from None

    def labels(self, category_ids: Iterable[int]) -> list[int]:
        return [self.label(c) for c in category_ids]

    def category_id(self, label: int) -> int:
        if not 1 <= int(label) <= len(self):
            raise KeyError(f"label {label} is not in 1..{len(self)}")
        return self.category_ids[int(label) - 1]

    def category_ids_of(self, labels) -> np.ndarray:
        """Vectorised ``category_id`` for an array (or tensor) of labels."""
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size and (labels.min() < 1 or labels.max() > len(self)):
            raise KeyError(f"labels must lie in 1..{len(self)}")
        return self._id_of_label[labels]

    def label_mask(self, category_ids: Iterable[int]) -> np.ndarray:
        """Boolean vector over labels ``0..C``: True for the given categories.

        This is how a model tells which predicted classes belong to a class set, e.g.
        which classes are in A and so have mask supervision.
        """
        mask = np.zeros(self.num_classes, dtype=bool)
        mask[self.labels(category_ids)] = True
        return mask
