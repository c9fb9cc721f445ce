"""COCO evaluation of partially supervised models: AP on class sets A and B."""

from maskx.evaluation.coco_eval import METRICS, SUBSETS, SplitEvaluator
from maskx.evaluation.detections import detections_to_coco_results, encode_masks
from maskx.evaluation.results_file import iou_types_of, validate_results
from maskx.evaluation.table import format_metrics_table

__all__ = [
    "METRICS",
    "SUBSETS",
    "SplitEvaluator",
    "detections_to_coco_results",
    "encode_masks",
    "format_metrics_table",
    "iou_types_of",
    "validate_results",
]
