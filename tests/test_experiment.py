"""The demo's pipeline (maskx.engine.experiment) on a tiny budget: data, detector, heads,
an end-to-end variant, shared-detection evaluation with intervals, table and pictures."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from PIL import Image

from maskx.config import ConfigError
from maskx.engine.experiment import Experiment, Row, Summary, format_table, load_experiment, summarise
from model_recipes import TINY_MODEL, tiny_recipe


def test_a_tiny_experiment_end_to_end(tmp_path):
    recipe = tiny_recipe("unused", solver={"iterations": 2}, model={
        "box": {**TINY_MODEL["box"], "score_thresh": 0.0, "detections_per_image": 10}})
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump({
        "recipe": "recipe.yaml",
        "data": {"num_train": 4, "num_val": 3, "seed": 5},
        "heads_overrides": ["solver.iterations=3"],
        "heads": {"class_agnostic": {"predictor": {"kind": "class_agnostic"}},
                  "transfer_mlp": {"predictor": {"kind": "transfer", "mlp": True}},
                  "oracle": {"predictor": {"kind": "class_specific"}, "split": "all"}},
        "e2e": {"e2e_transfer": {"predictor": {"kind": "transfer"}}},
        "bootstrap_samples": 30,
        "prediction_images": 2,
    }))
    config = load_experiment(tmp_path / "experiment.yaml")
    out = tmp_path / "out"
    messages = []
    # Training alone (as one process per seed would), then the evaluation finds it done.
    assert Experiment(config, out, progress=False, log=messages.append).run(evaluate=False) is None
    assert (out / "seed0" / "heads" / "model_final.pt").is_file() and not (out / "table.md").exists()
    messages.clear()
    summary = Experiment(config, out, progress=False, log=messages.append).run()
    assert sum("already trained" in m for m in messages) == 3
    assert set(summary["rows"]) == {"class_agnostic", "transfer_mlp", "oracle", "e2e_transfer"}
    cell = summary["rows"]["transfer_mlp"]["AP"]["segm B"]
    assert cell["low"] is None or cell["low"] <= cell["estimate"] <= cell["high"]
    assert summary["rows"]["e2e_transfer"]["training"] == "end-to-end"
    assert "gap_closed" in summary
    table = (out / "table.md").read_text()
    assert "| oracle (class-specific) | stage-wise |" in table
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"]["B"] and len(metrics["split"]["B names"]) == len(metrics["split"]["B"])
    per_class = summary["rows"]["oracle"]["mask AP per class"]
    assert len(per_class) == 24 and set(metrics["split"]["B names"]) < set(per_class)
    assert all(v is None or 0 <= v <= 100 for v in per_class.values())
    assert "Mask AP per class of B" in table and f"| {metrics['split']['B names'][0]} |" in table
    grid = Image.open(out / "predictions.png")
    assert grid.width > grid.height  # two rows of five drawings
    assert any("already generated" in m for m in messages)

    # Heads on another split, on the same data and detector: nothing generated or trained
    # but the heads, and set B is the new split's.
    again = load_experiment(tmp_path / "experiment.yaml", [
        f"detectors={out}", "overrides=[data.split=synthetic_disjoint]", "e2e={}", "prediction_images=0"])
    messages.clear()
    other = tmp_path / "other"
    resplit = Experiment(again, other, progress=False, log=messages.append).run()
    assert any("(reused)" in m for m in messages) and not (other / "seed0" / "detector").exists()
    assert not (other / "data").exists() and (other / "seed0" / "heads" / "model_final.pt").is_file()
    assert set(resplit["rows"]) == {"class_agnostic", "transfer_mlp", "oracle"}
    assert sorted(resplit["split"]["B"]) != sorted(summary["split"]["B"])
    assert resplit["rows"]["oracle"]["AP"]["bbox all"] == summary["rows"]["oracle"]["AP"]["bbox all"]


def test_reused_detectors_must_exist(tmp_path):
    recipe = tiny_recipe("unused")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump({
        "recipe": "recipe.yaml", "data": {"num_train": 2, "num_val": 2, "seed": 5},
        "heads": {"class_agnostic": {"predictor": {"kind": "class_agnostic"}}}}))
    config = load_experiment(tmp_path / "experiment.yaml", [f"detectors={tmp_path / 'nowhere'}"])
    with pytest.raises(ConfigError, match="detectors: .* holds no synthetic set"):
        Experiment(config, tmp_path / "out", progress=False, log=lambda m: None).run()
    assert not (tmp_path / "out" / "seed0").exists()
    with pytest.raises(ConfigError, match="reused detectors serve stage-wise heads"):
        load_experiment(tmp_path / "experiment.yaml", [f"detectors={tmp_path}", "heads={}",
                                                       "e2e={e: {predictor: {kind: transfer}}}"])


def test_category_set_and_split_are_checked_before_any_work(tmp_path):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe("unused")))
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump({
        "recipe": "recipe.yaml", "data": {"num_train": 2, "num_val": 1, "seed": 5},
        "heads": {"class_agnostic": {"predictor": {"kind": "class_agnostic"}},
                  "oracle": {"predictor": {"kind": "class_specific"}, "split": "all"}}}))
    with pytest.raises(ConfigError, match="data.scene.categories: unknown category set 'animals'"):
        load_experiment(tmp_path / "experiment.yaml", ["data.scene.categories=animals"])
    # The recipe's split (synthetic) belongs to the other category set.
    config = load_experiment(tmp_path / "experiment.yaml", ["data.scene.categories=composed"])
    with pytest.raises(ConfigError, match="data.split: split 'synthetic' needs .* 'families' categories"):
        Experiment(config, tmp_path / "out", progress=False, log=lambda m: None)
    config = load_experiment(tmp_path / "experiment.yaml", [
        "data.scene.categories=composed", "overrides=[data.split=synthetic_composed]"])
    experiment = Experiment(config, tmp_path / "out", progress=False, log=lambda m: None)
    experiment.generate_data()
    dataset = json.loads((tmp_path / "out/data/annotations/instances_val.json").read_text())
    assert [c["name"] for c in dataset["categories"]][:4] == ["disk", "holed_disk", "notched_disk", "split_disk"]
    assert not (tmp_path / "out" / "seed0").exists()


def test_data_of_an_older_marker_is_reused(tmp_path):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe("unused")))
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump({
        "recipe": "recipe.yaml", "data": {"num_train": 1, "num_val": 1, "seed": 5},
        "heads": {"class_agnostic": {"predictor": {"kind": "class_agnostic"}}}}))
    messages = []
    experiment = Experiment(load_experiment(tmp_path / "experiment.yaml"), tmp_path, progress=False,
                            log=messages.append)
    experiment.generate_data()
    # Written before scene.categories existed: the knob takes its default, the set is reused.
    marker = tmp_path / "data" / "generated.json"
    recorded = json.loads(marker.read_text())
    assert recorded["scene"].pop("categories") == "families"
    marker.write_text(json.dumps(recorded))
    experiment.generate_data()
    assert "already generated" in messages[-1]
    # Another seed is another set.
    recorded["seed"] = 6
    marker.write_text(json.dumps(recorded))
    experiment.generate_data()
    assert "generating" in messages[-1] and json.loads(marker.read_text())["seed"] == 5


def _bootstrap(*aps_per_seed: dict[str, float]):
    """A stand-in for SplitEvaluator.evaluate_with_intervals: every row's AP (fractions) of
    seed 0, 1, ... with 200 resamples scattered around it."""
    rng = np.random.default_rng(0)
    keys = [(subset, iou) for subset in ("A", "B", "all") for iou in ("segm", "bbox")]
    intervals, samples = {}, {}
    noise = 0.005 * rng.standard_normal(200)  # shared: paired resamples of the same images
    for seed, aps in enumerate(aps_per_seed):
        for name, ap in aps.items():
            intervals[f"{seed}/{name}"] = {s: {} for s in ("A", "B", "all")}
            samples[f"{seed}/{name}"] = {s: {} for s in ("A", "B", "all")}
            for subset, iou in keys:
                intervals[f"{seed}/{name}"][subset][iou] = {"AP": {"estimate": ap}}
                samples[f"{seed}/{name}"][subset][iou] = {"AP": ap + noise + 0.002 * rng.standard_normal(200)}
    return SimpleNamespace(intervals=intervals, samples=samples)


def test_share_of_the_gap_needs_a_gap():
    rows = [Row(name, "stage-wise", name) for name in ("class_agnostic", "transfer_mlp", "oracle")]
    with_gap = summarise(_bootstrap({"class_agnostic": 0.30, "transfer_mlp": 0.32, "oracle": 0.40}), rows, [0],
                         Summary())
    gap = with_gap["gap_closed"]
    assert gap["fraction"] == pytest.approx(0.2)
    assert gap["fraction_interval"][0] < 0.2 < gap["fraction_interval"][1]
    assert gap["oracle_minus_baseline"]["estimate"] == pytest.approx(10.0)
    assert "share of the gap closed: 20% [" in format_table(with_gap, rows)

    # The oracle below the baseline: the difference is reported, negative, and the share is
    # undefined instead of a ratio of noise.
    no_gap = summarise(_bootstrap({"class_agnostic": 0.30, "transfer_mlp": 0.31, "oracle": 0.299}), rows, [0],
                       Summary())
    gap = no_gap["gap_closed"]
    assert gap["oracle_minus_baseline"]["estimate"] == pytest.approx(-0.1)
    assert gap["oracle_minus_baseline"]["low"] < 0
    assert gap["fraction"] is None and gap["fraction_interval"] is None
    assert "share of the gap closed: undefined" in format_table(no_gap, rows)


def test_summary_keeps_each_seed():
    rows = [Row(name, "stage-wise", name) for name in ("class_agnostic", "transfer_mlp", "oracle")]
    bootstrap = _bootstrap({"class_agnostic": 0.30, "transfer_mlp": 0.32, "oracle": 0.40},
                           {"class_agnostic": 0.20, "transfer_mlp": 0.26, "oracle": 0.30})
    summary = summarise(bootstrap, rows, [0, 1], Summary())
    agnostic = summary["rows"]["class_agnostic"]
    assert agnostic["AP"]["segm B"]["estimate"] == pytest.approx(25.0)
    assert [agnostic["AP per seed"][seed]["segm B"]["estimate"] for seed in ("0", "1")] == pytest.approx([30.0, 20.0])
    gap = summary["gap_closed"]
    assert gap["fraction"] == pytest.approx(8 / 20)
    assert [gap["per seed"][seed]["fraction"] for seed in ("0", "1")] == pytest.approx([0.2, 0.6])
    assert gap["per seed"]["1"]["method_minus_baseline"]["estimate"] == pytest.approx(6.0)
    assert "share of the gap closed per seed: seed 0 20% [" in format_table(summary, rows)
    assert "seed 1 60% [" in format_table(summary, rows)
    # One seed: nothing to repeat.
    single = summarise(bootstrap, rows, [1], Summary())
    assert "AP per seed" not in single["rows"]["oracle"] and "per seed" not in single["gap_closed"]
    assert single["gap_closed"]["fraction"] == pytest.approx(0.6)
