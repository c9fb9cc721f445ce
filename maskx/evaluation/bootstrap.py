"""Bootstrap confidence intervals for COCO AP over the choice of validation images.

COCOeval matches detections to ground truth image by image and category by category, and
that matching does not depend on which other images are evaluated. So it runs once
(``match_images``), and AP on a resample of the images, drawn with replacement, is then
recomputed from compact per-category arrays exactly as ``COCOeval.accumulate`` would on an
image list holding those repeats (``average_precision``), for all resamples at once.
``bootstrap`` does this for several results lists on the same resamples, so that
differences between them are paired (``paired_difference``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskx.data.coco_api import quiet

# COCOeval.stats[0:3]: AP over IoU .50:.95, at IoU .50 and at .75 (all areas, 100 detections).
BOOTSTRAP_METRICS = ("AP", "AP50", "AP75")
MAX_DETECTIONS = 100
# Detections (counted once per draw of their image) and ground truths of the samples handled
# in one step; bounds the working memory at about IoU thresholds x this x 8 bytes per array.
_ENTRIES_PER_CHUNK = 1 << 18


@dataclass(frozen=True)
class CategoryMatches:
    """COCOeval's matching of one category on every image of ``MatchTable.image_ids``.

    Detections are listed image by image in ``image_ids`` order, each image's in COCOeval's
    order (score descending, ties in results order, at most ``MAX_DETECTIONS``).
    """

    scores: np.ndarray  # [D] float64
    image_positions: np.ndarray  # [D] int64, index into image_ids, non-decreasing
    matched: np.ndarray  # [T, D] bool: matched a ground truth at IoU threshold t (dtMatches)
    ignored: np.ndarray  # [T, D] bool: COCOeval's dtIgnore (matched a crowd region)
    num_ground_truths: np.ndarray  # [I] int64: ground truths that are not crowd, per image


@dataclass(frozen=True)
class MatchTable:
    """Per-category matching of one results list against the ground truth, for one iou type."""

    iou_type: str
    image_ids: tuple[int, ...]  # COCOeval's params.imgIds (sorted)
    iou_thresholds: np.ndarray  # [T]
    recall_thresholds: np.ndarray  # [R]
    categories: Mapping[int, CategoryMatches]


@dataclass(frozen=True)
class BootstrapResult:
    """AP of several results lists on the full validation set and on shared resamples of it.

    ``intervals[name][subset][iou_type][metric]`` holds ``estimate`` (AP on the full set,
    COCOeval's value), ``std`` (standard deviation over the resamples) and ``low``/``high``
    (their 2.5 and 97.5 percentiles); statistics use the resamples where the AP is defined,
    and all four are -1 where it is undefined. ``samples`` holds the resampled values
    ([num_samples], -1 where undefined), ``resamples`` the image positions drawn.
    ``per_category[name][iou_type][category_id]`` is each category's AP on the full set
    (-1 where the category has no ground truth), as COCOeval's precision array gives it.
    """

    resamples: np.ndarray  # [num_samples, num_images], the same for every results list
    intervals: dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]]
    samples: dict[str, dict[str, dict[str, dict[str, np.ndarray]]]]
    per_category: dict[str, dict[str, dict[int, float]]]


def match_images(gt: COCO, detections: COCO, iou_type: str,
                 category_ids: Sequence[int] | None = None) -> MatchTable:
    """Run COCOeval's per-image matching once and keep what AP needs from it.

    ``category_ids`` defaults to every ground-truth category.
    """
    evaluation = COCOeval(gt, detections, iou_type)
    params = evaluation.params
    if category_ids is not None:
        params.catIds = list(category_ids)
    # Only AP over all areas at 100 detections is resampled: skip the other area ranges.
    params.areaRng = [params.areaRng[params.areaRngLbl.index("all")]]
    params.areaRngLbl = ["all"]
    params.maxDets = [MAX_DETECTIONS]
    with quiet():
        evaluation.evaluate()
    # evaluate() sorted params.imgIds and params.catIds; evalImgs runs category-major.
    num_images = len(params.imgIds)
    categories = {
        int(category_id): _category_matches(
            evaluation.evalImgs[k * num_images:(k + 1) * num_images], len(params.iouThrs))
        for k, category_id in enumerate(params.catIds)
    }
    return MatchTable(iou_type, tuple(int(i) for i in params.imgIds), params.iouThrs.copy(),
                      params.recThrs.copy(), categories)


def _category_matches(per_image: list[dict | None], num_thresholds: int) -> CategoryMatches:
    num_ground_truths = np.zeros(len(per_image), dtype=np.int64)
    scores = [np.zeros(0)]
    positions = [np.zeros(0, dtype=np.int64)]
    matched = [np.zeros((num_thresholds, 0), dtype=bool)]
    ignored = [np.zeros((num_thresholds, 0), dtype=bool)]
    for position, image in enumerate(per_image):
        if image is None:  # neither ground truth nor detections of this category here
            continue
        num_ground_truths[position] = np.count_nonzero(image["gtIgnore"] == 0)
        scores.append(np.asarray(image["dtScores"], dtype=np.float64))
        positions.append(np.full(len(image["dtScores"]), position, dtype=np.int64))
        # accumulate() reads a match as the nonzero id of the matched ground truth.
        matched.append(image["dtMatches"] != 0)
        ignored.append(np.asarray(image["dtIgnore"], dtype=bool))
    return CategoryMatches(np.concatenate(scores), np.concatenate(positions),
                           np.concatenate(matched, axis=1), np.concatenate(ignored, axis=1),
                           num_ground_truths)


def draw_resamples(num_images: int, num_samples: int = 1000, seed: int | None = 0) -> np.ndarray:
    """``num_samples`` resamples of ``num_images`` image positions, drawn with replacement
    from ``np.random.default_rng(seed)``: [num_samples, num_images]."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) \
            or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    return np.random.default_rng(seed).integers(0, num_images, size=(num_samples, num_images))


def average_precision(table: MatchTable, category_ids: Sequence[int],
                      samples: np.ndarray) -> dict[str, float | np.ndarray]:
    """AP, AP50 and AP75 over ``category_ids`` on a multiset of images, as COCOeval computes them.

    ``samples`` holds positions into ``table.image_ids``: one sample as a 1-D array (the
    result values are floats) or several as the rows of a 2-D array (arrays, one value per
    row). A sample is the image list COCOeval would evaluate, in order: an image that
    appears k times contributes its detections and ground truths k times. Values are -1
    where no category has ground truth in the sample.
    """
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise ValueError(f"samples must be a 1-D or 2-D array, got shape {samples.shape}")
    single = samples.ndim == 1
    values, defined = _category_values(table, category_ids, np.atleast_2d(samples))
    means = _mean_over_categories(values, defined)
    return {name: float(row[0]) if single else row for name, row in zip(BOOTSTRAP_METRICS, means)}


def bootstrap(tables: Mapping[str, Mapping[str, MatchTable]],
              subsets: Mapping[str, Sequence[int]], resamples: np.ndarray) -> BootstrapResult:
    """Full-set and resampled AP for every results list, category subset and iou type.

    ``tables[name][iou_type]`` is the ``match_images`` output of results list ``name``;
    all must cover the same images. ``subsets`` maps a subset name to its category ids;
    ``resamples`` comes from ``draw_resamples`` and is shared by every list.
    """
    image_ids = {table.image_ids for by_type in tables.values() for table in by_type.values()}
    if len(image_ids) > 1:
        raise ValueError("the match tables do not cover the same images")
    num_images = len(next(iter(image_ids), ()))
    resamples = np.asarray(resamples)
    if resamples.ndim != 2 or resamples.shape[0] < 1:
        raise ValueError(f"resamples must be a non-empty 2-D array, got shape {resamples.shape}")
    if resamples.size and not 0 <= resamples.min() <= resamples.max() < num_images:
        raise ValueError(f"resamples hold image positions outside 0..{num_images - 1}")
    # Row 0 is the full set in COCOeval's order: the point estimate.
    samples = np.concatenate([np.arange(num_images)[None], resamples])
    category_ids = sorted({int(i) for ids in subsets.values() for i in ids})
    intervals: dict = {}
    resampled: dict = {}
    per_category: dict = {}
    for name, by_type in tables.items():
        intervals[name] = {subset: {} for subset in subsets}
        resampled[name] = {subset: {} for subset in subsets}
        per_category[name] = {}
        for iou_type, table in by_type.items():
            values, defined = _category_values(table, category_ids, samples)
            # Sample row 0 is the full set.
            per_category[name][iou_type] = {
                category_id: float(values[k, BOOTSTRAP_METRICS.index("AP"), 0]) if defined[k, 0] else -1.0
                for k, category_id in enumerate(category_ids)}
            for subset, ids in subsets.items():
                rows = [category_ids.index(int(i)) for i in ids]
                means = _mean_over_categories(values[rows], defined[rows])
                resampled[name][subset][iou_type] = dict(zip(BOOTSTRAP_METRICS, means[:, 1:]))
                intervals[name][subset][iou_type] = {
                    metric: _interval(float(row[0]), row[1:])
                    for metric, row in zip(BOOTSTRAP_METRICS, means)
                }
    return BootstrapResult(resamples, intervals, resampled, per_category)


def paired_difference(result: BootstrapResult, first: str, second: str
                      ) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """AP of results list ``first`` minus that of ``second``, resample by resample.

    Per subset, iou type and metric: ``estimate`` (the full-set difference), ``mean``,
    ``std``, ``low``/``high`` (2.5 and 97.5 percentiles) of the resampled differences and
    ``fraction_positive``, the fraction of resamples where ``first`` scores higher. NaN
    where the AP is undefined (a difference of -1 is a real value).
    """
    unknown = [name for name in (first, second) if name not in result.intervals]
    if unknown:
        raise ValueError(f"no results list named {unknown[0]!r}; have {list(result.intervals)}")
    differences: dict = {}
    for subset, by_type in result.samples[first].items():
        differences[subset] = {}
        for iou_type, by_metric in by_type.items():
            differences[subset][iou_type] = {}
            for metric, values in by_metric.items():
                other = result.samples[second][subset][iou_type][metric]
                defined = (values >= 0) & (other >= 0)
                delta = values[defined] - other[defined]
                estimate = (result.intervals[first][subset][iou_type][metric]["estimate"]
                            - result.intervals[second][subset][iou_type][metric]["estimate"])
                if not delta.size:
                    differences[subset][iou_type][metric] = dict.fromkeys(
                        ("estimate", "mean", "std", "low", "high", "fraction_positive"),
                        float("nan"))
                    continue
                low, high = np.percentile(delta, [2.5, 97.5])
                differences[subset][iou_type][metric] = {
                    "estimate": estimate, "mean": float(delta.mean()), "std": float(delta.std()),
                    "low": float(low), "high": float(high),
                    "fraction_positive": float(np.mean(delta > 0)),
                }
    return differences


def _interval(estimate: float, values: np.ndarray) -> dict[str, float]:
    defined = values[values >= 0]
    if estimate < 0 or not defined.size:
        return dict.fromkeys(("estimate", "std", "low", "high"), -1.0)
    low, high = np.percentile(defined, [2.5, 97.5])
    return {"estimate": estimate, "std": float(defined.std()), "low": float(low),
            "high": float(high)}


def _mean_over_categories(values: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """[M, S] means of [K, M, S] per-category values over the defined categories, or -1.

    COCOeval averages its precision over thresholds and the categories with ground truth
    at once; every category has the same number of entries, so this is the same mean.
    """
    count = defined.sum(axis=0)
    total = np.where(defined[:, None], values, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), -1.0)


def _category_values(table: MatchTable, category_ids: Sequence[int], samples: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per category, metric and sample row, the mean interpolated precision ([K, M, S]) and
    whether the category has ground truth in the sample ([K, S])."""
    num_images = len(table.image_ids)
    if not np.issubdtype(samples.dtype, np.integer) and samples.size:
        raise ValueError("samples must hold integer image positions")
    if samples.size and not 0 <= samples.min() <= samples.max() < num_images:
        raise ValueError(f"samples hold image positions outside 0..{num_images - 1}")
    samples = samples.astype(np.int64)
    unknown = [i for i in category_ids if int(i) not in table.categories]
    if unknown:
        raise ValueError(f"the match table has no category {unknown[0]!r}")
    # The IoU thresholds each of BOOTSTRAP_METRICS averages over.
    iou_threshold_sets = [np.arange(len(table.iou_thresholds)),
                          np.flatnonzero(table.iou_thresholds == 0.5),
                          np.flatnonzero(table.iou_thresholds == 0.75)]
    values = np.zeros((len(category_ids), len(BOOTSTRAP_METRICS), len(samples)))
    defined = np.zeros((len(category_ids), len(samples)), dtype=bool)
    for k, category_id in enumerate(category_ids):
        category = _ResampledCategory(table.categories[int(category_id)], num_images)
        num_positives = category.num_ground_truths[samples].sum(axis=1)
        defined[k] = num_positives > 0
        cost = category.num_detections[samples].sum(axis=1) + num_positives
        rows_per_chunk = max(1, _ENTRIES_PER_CHUNK // max(1, int(cost.max(initial=0))))
        for start in range(0, len(samples), rows_per_chunk):
            rows = slice(start, start + rows_per_chunk)
            values[k, :, rows] = category.mean_precision(
                samples[rows], num_positives[rows], table.recall_thresholds, iou_threshold_sets)
    return values, defined


class _ResampledCategory:
    """One category's detections, prepared to recompute its precision on many samples."""

    def __init__(self, matches: CategoryMatches, num_images: int):
        # Dense ranks of the scores, best first. Ties share a rank, so a stable sort by rank
        # keeps tied detections in list order, as COCOeval's mergesort of -scores does.
        _, self.rank = np.unique(-matches.scores, return_inverse=True)
        self.rank = self.rank.reshape(-1)
        self.num_ranks = int(self.rank.max(initial=-1)) + 1
        self.num_detections = np.bincount(matches.image_positions, minlength=num_images)
        self.first_detection = np.cumsum(self.num_detections) - self.num_detections
        # Ignored detections count neither way; they only repeat the previous point of the
        # precision/recall curve, which changes no interpolated precision.
        self.true_positive = matches.matched & ~matches.ignored
        self.false_positive = ~matches.matched & ~matches.ignored
        self.num_ground_truths = matches.num_ground_truths

    def mean_precision(self, samples: np.ndarray, num_positives: np.ndarray,
                       recall_thresholds: np.ndarray, iou_threshold_sets: Sequence[np.ndarray]
                       ) -> np.ndarray:
        """COCOeval's interpolated precision on each sample (row of image positions), averaged
        over the recall thresholds and over each set of IoU thresholds: [sets, S]. Rows with
        no ground truth come out 0 and are left out by the caller."""
        num_samples, sample_size = samples.shape
        images = samples.reshape(-1)
        per_draw = self.num_detections[images]
        draw_start = np.cumsum(per_draw) - per_draw
        # Every draw's detections, in (sample, draw, detection) order: the order in which
        # COCOeval concatenates them over its image list.
        detections = (np.repeat(self.first_detection[images] - draw_start, per_draw)
                      + np.arange(int(per_draw.sum())))
        per_sample = per_draw.reshape(num_samples, sample_size).sum(axis=1)
        sample_of = np.repeat(np.arange(num_samples), per_sample)
        order = np.argsort(sample_of * self.num_ranks + self.rank[detections], kind="stable")
        detections = detections[order]
        true_positive = self.true_positive[:, detections]
        tp_before = _running_count(true_positive)
        fp_before = _running_count(self.false_positive[:, detections])

        # The interpolated precision at recall r is the best precision at recall >= r, and
        # precision only falls between true positives: only their points matter. The m-th
        # true positive of a sample goes to column m - 1; a sample has at most as many true
        # positives as ground truths, and the zeros after them are precision 0.
        threshold, entry = np.nonzero(true_positive)
        sample = sample_of[entry]
        first = (np.cumsum(per_sample) - per_sample)[sample]
        tp = tp_before[threshold, entry + 1] - tp_before[threshold, first]
        fp = fp_before[threshold, entry + 1] - fp_before[threshold, first]
        width = max(int(num_positives.max(initial=0)), 1)
        envelope = np.zeros((len(true_positive), num_samples, width))
        # COCOeval's float arithmetic, epsilon included, so values agree to the last bit.
        envelope[threshold, sample, tp - 1] = tp / (fp + tp + np.spacing(1))
        envelope = np.maximum.accumulate(envelope[:, :, ::-1], axis=2)[:, :, ::-1]
        # COCOeval reads the envelope at searchsorted(recall, r): the first point whose recall
        # reaches r, the point of the needed-th true positive (the first point if none is
        # needed). Count how often each column is read rather than gather [T, S, R] values.
        needed = _true_positives_needed(num_positives, recall_thresholds)
        column = np.arange(num_samples)[:, None] * width + np.maximum(needed - 1, 0)
        reads = np.bincount(column.reshape(-1), minlength=num_samples * width)
        reads = reads.reshape(num_samples, width)
        return np.stack([(envelope[thresholds] * reads).sum(axis=(0, 2))
                         / (len(thresholds) * len(recall_thresholds))
                         for thresholds in iou_threshold_sets])


def _running_count(flags: np.ndarray) -> np.ndarray:
    """[T, N + 1]: column n counts the [T, N] flags set before entry n."""
    counts = np.zeros((flags.shape[0], flags.shape[1] + 1), dtype=np.int64)
    np.cumsum(flags, axis=1, out=counts[:, 1:])
    return counts


def _true_positives_needed(num_positives: np.ndarray, recall_thresholds: np.ndarray
                           ) -> np.ndarray:
    """[S, R]: the fewest true positives v whose recall v / num_positives, in COCOeval's float
    division, reaches each threshold (rows without ground truth get a harmless value)."""
    total = np.maximum(num_positives, 1).astype(np.float64)[:, None]
    needed = np.ceil(recall_thresholds * total)
    # The rounded product can put the ceiling one off; settle it with the division itself.
    one_less = np.maximum(needed - 1, 0)
    needed = np.where((needed >= 1) & (one_less / total >= recall_thresholds), one_less, needed)
    needed = np.where(needed / total < recall_thresholds, needed + 1, needed)
    return needed.astype(np.int64)
