"""COCO evaluation of partially supervised models: AP on class sets A and B."""

from maskx.evaluation.bootstrap import (
    BOOTSTRAP_METRICS,
    BootstrapResult,
    CategoryMatches,
    MatchTable,
    average_precision,
    bootstrap,
    draw_resamples,
    match_images,
    paired_difference,
)
from maskx.evaluation.coco_eval import METRICS, SUBSETS, SplitEvaluator
from maskx.evaluation.detections import detections_to_coco_results, encode_masks
from maskx.evaluation.results_file import iou_types_of, validate_results
from maskx.evaluation.table import format_metrics_table

__all__ = [
    "BOOTSTRAP_METRICS",
    "BootstrapResult",
    "CategoryMatches",
    "METRICS",
    "MatchTable",
    "SUBSETS",
    "SplitEvaluator",
    "average_precision",
    "bootstrap",
    "detections_to_coco_results",
    "draw_resamples",
    "encode_masks",
    "format_metrics_table",
    "iou_types_of",
    "match_images",
    "paired_difference",
    "validate_results",
]
