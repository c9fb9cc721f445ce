"""Plain-text table of A / B / all metrics."""

from __future__ import annotations

from maskx.evaluation.coco_eval import METRICS


def format_metrics_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per (subset, iou type), AP values in percent; '-' where undefined (-1)."""
    header = f"{'set':<5} {'type':<5}" + "".join(f"{name:>7}" for name in METRICS)
    lines = [header, "-" * len(header)]
    for subset, by_type in metrics.items():
        for iou_type, values in by_type.items():
            cells = "".join(
                f"{'-':>7}" if values[name] < 0 else f"{100 * values[name]:7.1f}"
                for name in METRICS
            )
            lines.append(f"{subset:<5} {iou_type:<5}{cells}")
    return "\n".join(lines)
