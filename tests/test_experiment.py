"""The demo's pipeline (maskx.engine.experiment) on a tiny budget: data, detector, heads,
an end-to-end variant, shared-detection evaluation with intervals, table and pictures."""

from __future__ import annotations

import json

import yaml
from PIL import Image

from maskx.engine.experiment import Experiment, load_experiment
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
    assert json.loads((out / "metrics.json").read_text())["split"]["B"]
    grid = Image.open(out / "predictions.png")
    assert grid.width > grid.height  # two rows of five drawings
    assert any("already generated" in m for m in messages)
