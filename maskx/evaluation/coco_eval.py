"""COCO AP on class sets A and B separately and on all classes (pycocotools COCOeval)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskx.data.categories import CategoryMap
from maskx.data.coco_api import build_coco, quiet
from maskx.data.errors import AnnotationError
from maskx.data.splits import resolve_split
from maskx.data.validation import load_coco
from maskx.evaluation.bootstrap import BootstrapResult, bootstrap, draw_resamples, match_images
from maskx.evaluation.results_file import RESULT_KEYS, iou_types_of, validate_results

# COCOeval.stats[0:6], in its order.
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
SUBSETS = ("A", "B", "all")


def _detections(gt: COCO, results: list[dict], iou_type: str) -> COCO:
    if not results:
        # loadRes cannot take an empty list; an index without annotations is the same thing.
        return build_coco({"images": gt.dataset["images"],
                           "categories": gt.dataset["categories"], "annotations": []})
    # Keep only the key this evaluation reads: with a bbox present, loadRes would take the
    # box area as the instance area and misplace masks in the small/medium/large ranges.
    dropped = RESULT_KEYS["segm" if iou_type == "bbox" else "bbox"]
    anns = [{k: v for k, v in result.items() if k != dropped} for result in results]
    with quiet():
        return gt.loadRes(anns)


def _coco_metrics(gt: COCO, detections: COCO, iou_type: str, category_ids: Sequence[int]) -> dict:
    if not category_ids:
        return {name: -1.0 for name in METRICS}
    evaluator = COCOeval(gt, detections, iou_type)
    evaluator.params.catIds = list(category_ids)
    with quiet():
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(METRICS, evaluator.stats[: len(METRICS)])}


class SplitEvaluator:
    """Evaluate detections on one ground-truth file, for a class split.

    Built up front (the ground truth is validated and the split resolved here), then
    ``evaluate`` returns ``{"A": {"bbox": {...}, "segm": {...}}, "B": ..., "all": ...}``
    with COCOeval's ``AP, AP50, AP75, APs, APm, APl`` as fractions (-1 where undefined).
    ``split`` is a split name (see ``maskx.data.splits``) or explicit ``(A_ids, B_ids)``.
    ``evaluate_with_intervals`` adds bootstrap intervals over the validation images.
    """

    def __init__(self, annotation_file: str | os.PathLike,
                 split: str | tuple[Sequence[int], Sequence[int]]):
        self.annotation_file = os.fspath(annotation_file)
        self.gt = load_coco(annotation_file)
        categories = self.gt.dataset["categories"]
        self.category_map = CategoryMap(categories)
        if isinstance(split, str):
            self.a_ids, self.b_ids = resolve_split(split, categories)
        else:
            self.a_ids, self.b_ids = sorted(split[0]), sorted(split[1])
            if set(self.a_ids) & set(self.b_ids):
                raise ValueError("sets A and B overlap")
            unknown = sorted(set(self.a_ids + self.b_ids) - set(self.category_map.category_ids))
            if unknown:
                raise ValueError(f"split names unknown category ids {unknown}")

    def _require_masks(self) -> None:
        for ann in self.gt.dataset["annotations"]:
            if "segmentation" not in ann:
                raise AnnotationError(self.annotation_file,
                                      "segm evaluation needs a segmentation on every annotation",
                                      f"annotation id {ann['id']}")

    def evaluate(self, results: list[dict], iou_types: Sequence[str] | None = None,
                 results_path: str = "<results>") -> dict[str, dict[str, dict[str, float]]]:
        """Metrics per subset and iou type; ``iou_types`` defaults to what results carry.

        ``results`` (see ``validate_results``) are checked first; ``results_path`` names
        them in errors.
        """
        iou_types = self._checked_iou_types(results, iou_types, results_path)
        if "segm" in iou_types:
            self._require_masks()
        metrics: dict[str, dict[str, dict[str, float]]] = {name: {} for name in SUBSETS}
        for iou_type in iou_types:
            detections = _detections(self.gt, results, iou_type)
            for name, category_ids in self._subsets().items():
                metrics[name][iou_type] = _coco_metrics(self.gt, detections, iou_type, category_ids)
        return metrics

    def evaluate_with_intervals(self, results_by_name: Mapping[str, list[dict]],
                                iou_types: Sequence[str] | None = None, num_samples: int = 1000,
                                seed: int | None = 0) -> BootstrapResult:
        """Bootstrap intervals of AP, AP50 and AP75 per results list, subset and iou type.

        The validation images are resampled with replacement ``num_samples`` times from
        ``np.random.default_rng(seed)``; every list is scored on the same resamples, so
        ``paired_difference(result, name_a, name_b)`` compares two of them. The lists are
        checked as in ``evaluate`` and named by their keys in errors; ``iou_types``
        defaults to those every list carries.
        """
        if not results_by_name:
            raise ValueError("no results lists to evaluate")
        # Drawn first so that a bad num_samples fails before any matching runs.
        resamples = draw_resamples(len(self.gt.imgs), num_samples, seed)
        carried = [self._checked_iou_types(results, iou_types, str(name))
                   for name, results in results_by_name.items()]
        common = [t for t in carried[0] if all(t in types for types in carried)]
        if not common:
            raise ValueError("the results lists carry no iou type in common")
        if "segm" in common:
            self._require_masks()
        subsets = self._subsets()
        tables = {
            name: {t: match_images(self.gt, _detections(self.gt, results, t), t, subsets["all"])
                   for t in common}
            for name, results in results_by_name.items()
        }
        return bootstrap(tables, subsets, resamples)

    def _subsets(self) -> dict[str, list[int]]:
        return {"A": self.a_ids, "B": self.b_ids, "all": list(self.category_map.category_ids)}

    def _checked_iou_types(self, results: list[dict], iou_types: Sequence[str] | None,
                           results_path: str) -> list[str]:
        """Validate ``results``; return ``iou_types``, by default those the results carry."""
        unknown = [t for t in iou_types or () if t not in RESULT_KEYS]
        if unknown:
            raise ValueError(f"unknown iou types {unknown}; use {list(RESULT_KEYS)}")
        validate_results(results, self.gt, results_path)
        available = iou_types_of(results)
        iou_types = list(iou_types or available)
        missing = [t for t in iou_types if t not in available]
        if missing:
            raise ValueError(f"{results_path}: results carry no {RESULT_KEYS[missing[0]]!r} "
                             f"for {missing[0]} evaluation")
        return iou_types
