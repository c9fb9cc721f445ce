"""Typed configuration (maskx.config): YAML + overrides into checked dataclasses."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskx.config import ConfigError, apply_overrides, from_dict, load_yaml, parse_override, to_dict
from maskx.engine.config import HeadConfig, RunConfig, load_run_config
from maskx.model import ModelConfig, PredictorConfig

REPO = Path(__file__).resolve().parents[1]


def test_round_trip_keeps_every_value():
    config = from_dict(RunConfig, {
        "model": {"min_size": [640, 800], "backbone": {"depth": 101, "weights": "r101.pth"},
                  "predictor": {"kind": "class_agnostic", "mlp": True}},
        "data": {"root": "coco", "split": "voc"},
        "train": {"stage": "mask", "detector": "det.pt"},
        "heads": {"a": {"predictor": {"kind": "transfer"}, "split": "all"}},
    })
    assert config.model.min_size == (640, 800) and config.model.backbone.depth == 101
    assert isinstance(config.heads["a"], HeadConfig) and config.heads["a"].split == "all"
    assert from_dict(RunConfig, to_dict(config)) == config


@pytest.mark.parametrize("data, message", [
    ({"model": {"backbone": {"dept": 50}}}, "unknown key 'model.backbone.dept'; did you mean 'depth'?"),
    ({"modle": {}}, "unknown key 'modle'; did you mean 'model'?"),
    ({"model": {"backbone": {"depth": "50"}}}, "model.backbone.depth: expected 18 | 34 | 50 | 101 | 152, got '50'"),
    ({"model": {"aligned": "yes"}}, "model.aligned: expected bool, got 'yes'"),
    ({"model": {"min_size": 800}}, "model.min_size: expected a list of int, got 800"),
    ({"model": {"min_size": [800, "x"]}}, "model.min_size[1]: expected int, got 'x'"),
    ({"model": {"num_classes": 1}}, "model.num_classes: expected at least 2"),
    ({"model": {"predictor": {"transfer_layers": 4}}}, "model.predictor.transfer_layers: expected 1, 2 or 3"),
    ({"model": {"backbone": {"width": 0}}}, "model.backbone.width"),
    ({"solver": {"steps": [3, 1]}}, "solver.steps: expected increasing iterations"),
    ({"solver": {"base_lr": True}}, "solver.base_lr: expected float, got True"),
    ({"train": {"stage": "mask"}}, "train.detector: stage 'mask' trains on a stage-1 checkpoint"),
    ({"heads": {"x": {"predictor": {"kind": "nope"}}}}, "heads.x.predictor.kind"),
    ({"heads": {"x y": {}}, "train": {"stage": "mask", "detector": "d"}}, "heads: head names"),
    ({"heads": {"x": {}}}, "heads: named heads are trained by stage 'mask'"),
    ({"model": {"predictor": {"kind": "class_specific", "mlp": True}}}, "model.predictor.mlp"),
    ({"model": {"predictor": {"transfer_input": "embedding"}}}, "model.predictor.embedding_file"),
    ({"data": {"root": None}}, "data.root: give a data root"),
])
def test_bad_keys_and_values_name_the_key(data, message):
    with pytest.raises(ConfigError) as error:
        from_dict(RunConfig, data)
    assert message in str(error.value)


def test_overrides_parse_values_as_yaml():
    assert parse_override("solver.base_lr=0.01") == (["solver", "base_lr"], 0.01)
    assert parse_override("model.min_size=[640, 800]") == (["model", "min_size"], [640, 800])
    assert parse_override("model.aligned=true") == (["model", "aligned"], True)
    assert parse_override("train.detector=null") == (["train", "detector"], None)
    data = apply_overrides({"solver": {"iterations": 5}}, ["solver.iterations=7", "model.backbone.depth=18"])
    assert data == {"solver": {"iterations": 7}, "model": {"backbone": {"depth": 18}}}
    for bad in ("novalue", "=3", "a..b=1", "solver.steps=[1,"):
        with pytest.raises(ConfigError):
            parse_override(bad)
    with pytest.raises(ConfigError, match="is not a section"):
        apply_overrides({"solver": 3}, ["solver.iterations=7"])


def test_yaml_files(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_yaml(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize("recipe", sorted((REPO / "configs").glob("*.yaml")))
def test_shipped_configurations_are_valid(recipe):
    data = load_yaml(recipe)
    if "recipe" in data:  # an experiment
        from maskx.engine.experiment import load_experiment

        experiment = load_experiment(recipe)
        load_run_config(experiment.recipe, experiment.overrides)
    else:
        load_run_config(recipe)


def test_predictor_descriptions():
    assert PredictorConfig().describe() == "transfer cls+box 2-layer leaky_relu"
    assert PredictorConfig(kind="class_agnostic", mlp=True).describe() == "class-agnostic +MLP"
    assert PredictorConfig(stop_gradient=False).describe().endswith("(no stop-grad)")
    assert ModelConfig().predictor == PredictorConfig()
