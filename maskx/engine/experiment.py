"""The paper's comparison in miniature: mask heads on one detector, scored on A and B.

An experiment (``configs/demo.yaml``, ``configs/benchmark_model.yaml``) generates the
synthetic benchmark, then for each seed trains a stage-1 detector on the boxes of every
class, trains the stage-wise mask heads side by side on it (every head sees the same
RoIs), and optionally end-to-end variants, each a run of its own. All variants are then
evaluated on the held-out images (the stage-wise heads on the very same detections), with
bootstrap intervals over those images shared by every row, so the table shows what is
noise. The validation images are only ever scored, never used to choose anything.

Every stage writes its run directory and is skipped when its final checkpoint exists, so
an interrupted experiment continues where it stopped. The stage-1 detector sees the boxes of
every class, so it does not depend on the split: ``detectors`` points an experiment at an
earlier one's data and detectors, to train and compare heads on another split (or with
other settings) without training the detectors again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from maskx.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from maskx.data import CocoInstanceDataset, coco_layout
from maskx.data.splits import ALL_CLASSES, resolve_split
from maskx.data.synthetic import SceneConfig, category_set
from maskx.engine.checkpoint import FINAL_NAME
from maskx.engine.config import HeadConfig, RunConfig
from maskx.engine.inference import evaluation_dataset, predict, run_inference
from maskx.engine.trained_model import load_trained_model
from maskx.engine.trainer import train


@dataclass
class SyntheticData:
    num_train: int = 400
    num_val: int = 100
    seed: int = 0
    # The scene sampler's knobs (the benchmark's defaults unless changed), among them the
    # category set (scene.categories: families or composed).
    scene: SceneConfig = field(default_factory=SceneConfig)

    def check(self) -> None:
        try:
            category_set(self.scene.categories)
        except ValueError as exc:
            raise ConfigError(f"scene.categories: {exc}") from None


@dataclass
class Summary:
    """Which rows the headline compares: how much of the baseline-to-oracle gap in mask
    AP on B the method closes."""

    baseline: str = "class_agnostic"
    method: str = "transfer_mlp"
    oracle: str = "oracle"


@dataclass
class ExperimentConfig:
    # The run recipe every stage starts from (a path relative to the experiment file), and
    # overrides (KEY=VALUE) per stage.
    recipe: str = "synthetic.yaml"
    overrides: list[str] = field(default_factory=list)
    detector_overrides: list[str] = field(default_factory=list)
    heads_overrides: list[str] = field(default_factory=list)
    e2e_overrides: list[str] = field(default_factory=list)
    data: SyntheticData = field(default_factory=SyntheticData)
    seeds: tuple[int, ...] = (0,)
    # Stage-wise heads, trained together on each seed's detector.
    heads: dict[str, HeadConfig] = field(default_factory=dict)
    # End-to-end variants, one run each.
    e2e: dict[str, HeadConfig] = field(default_factory=dict)
    summary: Summary = field(default_factory=Summary)
    bootstrap_samples: int = 1000
    prediction_images: int = 4
    # An earlier experiment's output directory whose data and stage-1 detectors (trained
    # on the same data spec and seeds) this one uses instead of its own.
    detectors: str | None = None

    def check(self) -> None:
        if not self.heads and not self.e2e:
            raise ConfigError("heads: an experiment needs stage-wise heads or end-to-end variants")
        if not self.seeds:
            raise ConfigError("seeds: expected at least one training seed")
        overlap = set(self.heads) & set(self.e2e)
        if overlap:
            raise ConfigError(f"e2e: names shared with heads: {sorted(overlap)}")
        if self.detectors is not None and not self.heads:
            raise ConfigError("detectors: reused detectors serve stage-wise heads, and this experiment has none")


def load_experiment(path: str | os.PathLike, overrides: Sequence[str] = ()) -> ExperimentConfig:
    config = from_dict(ExperimentConfig, apply_overrides(load_yaml(path), overrides))
    return replace(config, recipe=str(Path(path).parent / config.recipe))


@dataclass
class Row:
    name: str
    training: str  # stage-wise or end-to-end
    description: str


class Experiment:
    def __init__(self, config: ExperimentConfig, out_dir: str | os.PathLike, *, progress: bool = True,
                 log=print):
        self.config = config
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.log = log
        self.detectors_dir = Path(config.detectors) if config.detectors is not None else None
        self.data_dir = (self.detectors_dir or self.out_dir) / "data"
        self.timings: dict[str, float] = {}
        recipe = load_yaml(config.recipe)
        self.recipe = apply_overrides(recipe, list(config.overrides) + [f"data.root={self.data_dir}"])
        # Fail on a bad recipe or override, or a split of another category set, before any
        # work starts.
        splits = {self._run_config(stage, 0).data.split for stage in ("detector", "heads", "e2e")}
        splits |= {head.split for head in [*config.heads.values(), *config.e2e.values()] if head.split}
        categories = [{"id": i, "name": n} for i, n in category_set(config.data.scene.categories).categories]
        for split in sorted(splits):
            try:
                resolve_split(split, categories)
            except ValueError as exc:
                raise ConfigError(f"data.split: {exc}") from None

    def _run_config(self, stage: str, seed: int, **extra) -> RunConfig:
        overrides = {"detector": self.config.detector_overrides, "heads": self.config.heads_overrides,
                     "e2e": self.config.e2e_overrides}[stage]
        data = apply_overrides(self.recipe, list(overrides) + [f"train.seed={seed}"])
        config = from_dict(RunConfig, data)
        train_stage = {"detector": "detector", "heads": "mask", "e2e": "e2e"}[stage]
        return replace(config, train=replace(config.train, stage=train_stage, **extra.pop("train", {})), **extra)

    def rows(self) -> list[Row]:
        rows = [Row(name, "stage-wise", head.predictor.describe()) for name, head in self.config.heads.items()]
        rows += [Row(name, "end-to-end", head.predictor.describe()) for name, head in self.config.e2e.items()]
        return rows

    # -- stages -----------------------------------------------------------------------

    def _timed(self, key: str, function, *args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start
        return result

    def generate_data(self) -> None:
        """Generate the benchmark into ``out/data`` unless it is there with this spec.

        The set is written to a private folder and renamed into place, so processes that
        start together (one per seed) never read a half-written set."""
        from maskx.data.synthetic import SYNTHETIC_VERSION, generate_dataset

        spec = self.config.data
        wanted = {"version": SYNTHETIC_VERSION, **to_dict(spec)}

        def present() -> bool:
            marker = self.data_dir / "generated.json"
            if not marker.is_file():
                return False
            recorded = json.loads(marker.read_text())
            try:
                # Through the dataclass, so that a knob added since takes its default.
                recorded = {"version": recorded.pop("version", None),
                            **to_dict(from_dict(SyntheticData, recorded))}
            except ConfigError:
                return False
            return recorded == wanted

        if present():
            self.log(f"data: {self.data_dir} (already generated)")
            return
        if self.detectors_dir is not None:
            raise ConfigError(f"detectors: {self.data_dir} holds no synthetic set generated with this "
                              f"experiment's data settings ({wanted})")
        self.log(f"data: generating {spec.num_train} training and {spec.num_val} validation images")
        private = self.out_dir / f".data-{os.getpid()}"
        self._timed("data", generate_dataset, private, spec.num_train, spec.num_val, spec.seed, spec.scene)
        (private / "generated.json").write_text(json.dumps(wanted) + "\n")
        if self.data_dir.exists() and not present():
            shutil.rmtree(self.data_dir)  # a set of another spec
        try:
            os.rename(private, self.data_dir)
        except OSError:
            if not present():
                raise
            shutil.rmtree(private)  # another process put the same set in place first

    def _train(self, key: str, config: RunConfig, run_dir: Path) -> Path:
        final = run_dir / FINAL_NAME
        if final.is_file():
            self.log(f"{key}: {final} (already trained)")
            return final
        self.log(f"{key}: training {config.solver.iterations} iterations -> {run_dir}")
        result = self._timed(key, train, config, run_dir, resume=run_dir.exists(), progress=self.progress)
        if result.interrupted_by is not None:
            raise KeyboardInterrupt(f"{key} was interrupted; run the experiment again to continue")
        return result.checkpoint

    def _detector(self, seed: int) -> Path:
        if self.detectors_dir is None:
            return self._train(f"seed {seed} detector", self._run_config("detector", seed),
                               self.out_dir / f"seed{seed}" / "detector")
        final = self.detectors_dir / f"seed{seed}" / "detector" / FINAL_NAME
        if not final.is_file():
            raise ConfigError(f"detectors: no trained detector of seed {seed} at {final}")
        self.log(f"seed {seed} detector: {final} (reused)")
        return final

    def train_seed(self, seed: int) -> dict[str, Path]:
        """Train the detector, the stage-wise heads and the end-to-end variants of one seed."""
        seed_dir = self.out_dir / f"seed{seed}"
        checkpoints = {}
        if self.config.heads:
            detector = self._detector(seed)
            config = self._run_config("heads", seed, train={"detector": str(detector)},
                                      heads=dict(self.config.heads))
            checkpoints["heads"] = self._train(f"seed {seed} heads", config, seed_dir / "heads")
        for name, head in self.config.e2e.items():
            config = self._run_config("e2e", seed)
            config = replace(config, model=replace(config.model, predictor=head.predictor),
                             data=replace(config.data, split=head.split or config.data.split))
            checkpoints[name] = self._train(f"seed {seed} e2e {name}", config, seed_dir / f"e2e-{name}")
        return checkpoints

    # -- evaluation -------------------------------------------------------------------

    def _predict(self, checkpoints: dict[str, Path], seed: int) -> tuple[dict[str, list[dict]], dict]:
        """COCO results of every row of one seed on the validation images."""
        image_dir, annotation_file = coco_layout(self.data_dir, "val")
        dataset = evaluation_dataset(image_dir, annotation_file)
        results = {}
        models = {}
        for key, path in checkpoints.items():
            trained = load_trained_model(path)
            names = list(self.config.heads) if key == "heads" else ["e2e"]
            run = self._timed(f"seed {seed} inference", run_inference, trained, dataset, heads=names,
                              progress=self.progress)
            for name in names:
                row = name if key == "heads" else key
                results[row] = run.results[name]
                models[row] = (trained, name)
        return results, models

    def evaluate(self, checkpoints_by_seed: dict[int, dict[str, Path]]):
        from maskx.evaluation import SplitEvaluator

        _, annotation_file = coco_layout(self.data_dir, "val")
        split = from_dict(RunConfig, self.recipe).data.split
        evaluator = SplitEvaluator(annotation_file, split)
        results = {}
        models = {}
        for seed, checkpoints in checkpoints_by_seed.items():
            per_seed, per_seed_models = self._predict(checkpoints, seed)
            results.update({f"{seed}/{row}": value for row, value in per_seed.items()})
            if not models:
                models = per_seed_models
        self.log(f"bootstrap: {self.config.bootstrap_samples} resamples of the {len(evaluator.gt.imgs)} "
                 "validation images")
        bootstrap = self._timed("evaluation", evaluator.evaluate_with_intervals, results,
                                num_samples=self.config.bootstrap_samples)
        return bootstrap, models, evaluator

    # -- report -----------------------------------------------------------------------

    def run(self, evaluate: bool = True) -> dict | None:
        """Data, training of every seed and (with ``evaluate``) the evaluation and report.

        Seeds may be trained by separate processes (``evaluate=False``, one seed each);
        a final run over all seeds then finds them trained and evaluates."""
        started = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.generate_data()
        checkpoints = {seed: self.train_seed(seed) for seed in self.config.seeds}
        if not evaluate:
            return None
        bootstrap, models, evaluator = self.evaluate(checkpoints)
        class_names = dict(zip(evaluator.category_map.category_ids, evaluator.category_map.names))
        summary = summarise(bootstrap, self.rows(), self.config.seeds, self.config.summary, class_names)
        self.timings["total"] = time.perf_counter() - started
        summary["timings_seconds"] = {k: round(v, 1) for k, v in self.timings.items()}
        summary["split"] = {"A": evaluator.a_ids, "B": evaluator.b_ids,
                            "B names": [class_names[i] for i in evaluator.b_ids]}
        summary["config"] = to_dict(self.config)
        (self.out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        table = format_table(summary, self.rows())
        (self.out_dir / "table.md").write_text(table + "\n")
        self._draw_predictions(models, evaluator)
        self.log(table)
        return summary

    def _draw_predictions(self, models, evaluator) -> Path | None:
        if not self.config.prediction_images or not models:
            return None
        from maskx.visualize import draw_detections, draw_ground_truth, prediction_grid

        image_dir, annotation_file = coco_layout(self.data_dir, "val")
        # Every instance's mask (the validation set has them all); set B is marked.
        dataset = CocoInstanceDataset(image_dir, annotation_file, split=ALL_CLASSES, train=False)
        names = evaluator.category_map.names
        b_labels = [evaluator.category_map.label(i) for i in evaluator.b_ids]
        rows = []
        for index in range(min(self.config.prediction_images, len(dataset))):
            image, target = dataset[index]
            row = [draw_ground_truth(image, target, names, b_labels)]
            for name, (trained, head) in models.items():
                detections = predict(trained, [image], [head])[head][0]
                row.append(draw_detections(image, detections, names, b_labels, score_threshold=0.5))
            rows.append(row)
        path = self.out_dir / "predictions.png"
        prediction_grid(rows, ["ground truth"] + list(models), out_path=path)
        return path


def _combined(bootstrap, names: list[str], subset: str, iou_type: str, metric: str = "AP"):
    """Mean over seeds of the full-sample value and of every resample's value."""
    estimates = [bootstrap.intervals[n][subset][iou_type][metric]["estimate"] for n in names]
    samples = np.mean([bootstrap.samples[n][subset][iou_type][metric] for n in names], axis=0)
    return float(np.mean(estimates)), samples


def _interval(estimate: float, samples: np.ndarray, difference: bool = False) -> dict:
    """Estimate and 95% interval in percent. An AP below 0 is COCO's "no such objects";
    a difference of two APs may be negative."""
    samples = samples[np.isfinite(samples)]
    if (estimate < 0 and not difference) or not len(samples):
        return {"estimate": None, "low": None, "high": None, "std": None}
    low, high = np.percentile(samples, [2.5, 97.5])
    return {"estimate": round(100 * estimate, 2), "low": round(100 * float(low), 2),
            "high": round(100 * float(high), 2), "std": round(100 * float(np.std(samples)), 2)}


COLUMNS = (("B", "segm"), ("A", "segm"), ("B", "bbox"), ("A", "bbox"), ("all", "bbox"))


def _per_class(bootstrap, names: list[str], class_names: Mapping[int, str]) -> dict[str, float | None]:
    """Mask AP (percent) of every class on the full set, mean over seeds (None: no objects)."""
    out = {}
    for category_id, class_name in class_names.items():
        values = [bootstrap.per_category[n]["segm"][category_id] for n in names]
        values = [v for v in values if v >= 0]
        out[class_name] = round(100 * float(np.mean(values)), 2) if values else None
    return out


def _gap_closed(bootstrap, seeds: Sequence[int], choice: Summary) -> dict:
    """Method minus baseline and oracle minus baseline in mask AP on B, and the share of
    that gap the method closes, over the given seeds (paired: the same resamples)."""
    (base, base_s), (method, method_s), (oracle, oracle_s) = (
        _combined(bootstrap, [f"{seed}/{name}" for seed in seeds], "B", "segm")
        for name in (choice.baseline, choice.method, choice.oracle))
    gap = _interval(oracle - base, oracle_s - base_s, difference=True)
    # A share of the gap means something only when there is a gap: the oracle above
    # the baseline beyond the noise (otherwise the ratio's interval is unbounded).
    defined = gap["low"] is not None and gap["low"] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (method_s - base_s) / (oracle_s - base_s)
    return {
        "method_minus_baseline": _interval(method - base, method_s - base_s, difference=True),
        "oracle_minus_baseline": gap,
        "fraction": round((method - base) / (oracle - base), 3) if defined else None,
        "fraction_interval": [round(float(v), 3) for v in np.nanpercentile(ratio, [2.5, 97.5])]
        if defined else None,
    }


def summarise(bootstrap, rows: list[Row], seeds: Sequence[int], choice: Summary,
              class_names: Mapping[int, str] | None = None) -> dict:
    """AP (percent) with 95% bootstrap intervals per row, averaged over seeds, and the
    share of the baseline-to-oracle gap in mask AP on B that the method closes. With
    several seeds, each seed's own values follow ("AP per seed", the gap's "per seed").
    With ``class_names`` (category id to name), each row also has its mask AP per class."""
    out = {"rows": {}, "seeds": list(seeds)}

    def cells(names: list[str]) -> dict:
        return {f"{iou_type} {subset}": _interval(*_combined(bootstrap, names, subset, iou_type))
                for subset, iou_type in COLUMNS}

    for row in rows:
        names = [f"{seed}/{row.name}" for seed in seeds]
        out["rows"][row.name] = {"training": row.training, "description": row.description, "AP": cells(names)}
        if len(seeds) > 1:
            out["rows"][row.name]["AP per seed"] = {str(seed): cells([name]) for seed, name in zip(seeds, names)}
        if class_names:
            out["rows"][row.name]["mask AP per class"] = _per_class(bootstrap, names, class_names)
    if {choice.baseline, choice.method, choice.oracle} <= {row.name for row in rows}:
        out["gap_closed"] = {"baseline": choice.baseline, "method": choice.method, "oracle": choice.oracle,
                             **_gap_closed(bootstrap, seeds, choice)}
        if len(seeds) > 1:
            out["gap_closed"]["per seed"] = {str(seed): _gap_closed(bootstrap, [seed], choice) for seed in seeds}
    return out


def _cell(value: dict) -> str:
    if value["low"] is None:
        return "-"
    return f"{value['estimate']:.1f} [{value['low']:.1f}, {value['high']:.1f}]"


def _share(gap: dict) -> str:
    fraction, interval = gap["fraction"], gap["fraction_interval"]
    if fraction is None:
        return "undefined (the oracle does not beat the baseline beyond the noise)"
    return f"{100 * fraction:.0f}% [{100 * interval[0]:.0f}%, {100 * interval[1]:.0f}%]"


def format_table(summary: dict, rows: list[Row]) -> str:
    seeds = summary["seeds"]
    lines = [
        f"Mask^X R-CNN on the synthetic benchmark: COCO AP in percent, mean over {len(seeds)} "
        f"seed{'s' if len(seeds) > 1 else ''}, [95% bootstrap interval over the validation images]",
        "",
        "| method | training | mask AP on B | mask AP on A | box AP on B | box AP on A | box AP |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = summary["rows"][row.name]["AP"]
        lines.append(f"| {row.name} ({row.description}) | {row.training} | "
                     + " | ".join(_cell(cells[f"{t} {s}"]) for s, t in COLUMNS) + " |")
    gap = summary.get("gap_closed")
    if gap:
        lines += ["", f"{gap['method']} - {gap['baseline']}, mask AP on B: {_cell(gap['method_minus_baseline'])}; "
                      f"{gap['oracle']} - {gap['baseline']}: {_cell(gap['oracle_minus_baseline'])}; "
                      f"share of the gap closed: {_share(gap)}"]
        if "per seed" in gap:
            lines += ["", "share of the gap closed per seed: " + "; ".join(
                f"seed {seed} {_share(value)}" for seed, value in gap["per seed"].items())]
    b_names = summary.get("split", {}).get("B names")
    if b_names and all("mask AP per class" in summary["rows"][row.name] for row in rows):
        lines += ["", "Mask AP per class of B (mean over seeds, full validation set):", "",
                  "| method | " + " | ".join(b_names) + " |", "| --- |" + " --- |" * len(b_names)]
        for row in rows:
            per_class = summary["rows"][row.name]["mask AP per class"]
            lines.append(f"| {row.name} | " + " | ".join(
                "-" if per_class[n] is None else f"{per_class[n]:.1f}" for n in b_names) + " |")
    timings = summary.get("timings_seconds")
    if timings:
        lines += ["", "time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())]
    return "\n".join(lines)
