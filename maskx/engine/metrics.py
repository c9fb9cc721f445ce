"""Training metrics: ``metrics.jsonl`` (one JSON line per logged iteration) and the
loss-curve picture drawn from it."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable
from pathlib import Path


class SmoothedValues:
    """Medians over a window of recent iterations (what a progress bar should show)."""

    def __init__(self, window: int = 20):
        self.window = window
        self.values: dict[str, deque] = {}

    def update(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.values.setdefault(name, deque(maxlen=self.window)).append(value)

    def medians(self) -> dict[str, float]:
        return {name: sorted(v)[len(v) // 2] for name, v in self.values.items() if v}


class MetricsFile:
    """Appends records to ``metrics.jsonl``; on resume, first drops the records past the
    checkpoint's iteration (written after it by the run that was interrupted)."""

    def __init__(self, path: str | os.PathLike, resume_iteration: int | None = None):
        self.path = Path(path)
        if resume_iteration is None:
            self.path.write_text("")
        elif self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("iteration", 0) <= resume_iteration]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_losses(records: Iterable[dict], out_path: str | os.PathLike, title: str = "") -> Path | None:
    """Loss terms and their total against the iteration, log scale; None without records."""
    records = [r for r in records if "loss" in r]
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = [r["iteration"] for r in records]
    names = ["loss"] + sorted({k for r in records for k in r if k.startswith("loss_")})
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    for name in names:
        axes.plot(iterations, [r.get(name, float("nan")) for r in records], label=name,
                  linewidth=2.2 if name == "loss" else 1.2)
    axes.set_yscale("log")
    axes.set_xlabel("iteration")
    axes.set_ylabel("loss (median over the logging window)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, ncol=2)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    out_path = Path(out_path)
    figure.savefig(out_path)
    plt.close(figure)
    return out_path
