"""The model commands of ``python -m maskx``: train, eval --checkpoint, predict, and their
errors (status 2, a message naming the problem, no traceback)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from maskx import cli
from maskx.config import from_dict
from maskx.engine.config import RunConfig
from maskx.engine.trainer import train
from model_recipes import TINY_MODEL, tiny_recipe

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_run(synthetic_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("cli") / "e2e"
    # score_thresh 0: a barely trained model still reports detections (scores near 1/C).
    box = {**TINY_MODEL["box"], "score_thresh": 0.0, "detections_per_image": 20}
    config = from_dict(RunConfig, tiny_recipe(synthetic_root, solver={"iterations": 2}, model={"box": box}))
    train(config, run_dir, progress=False)
    return run_dir


def _main(argv, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _fails_clearly(argv, capsys, message: str) -> str:
    code, _, err = _main(argv, capsys)
    assert code == 2, err
    assert message in err and "Traceback" not in err, err
    return err


def test_bad_configuration_keys_and_values(synthetic_root, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(synthetic_root)))
    out = tmp_path / "run"
    err = _fails_clearly(["train", "--config", recipe, "--out", out, "--set", "solver.base_rl=0.1"], capsys,
                         "unknown key 'solver.base_rl'")
    assert "did you mean 'base_lr'" in err
    _fails_clearly(["train", "--config", recipe, "--out", out, "--set", "model.backbone.depth=19"], capsys,
                   "model.backbone.depth: expected 18 | 34 | 50 | 101 | 152, got 19")
    _fails_clearly(["train", "--config", recipe, "--out", out, "--set", "solver.iterations=many"], capsys,
                   "solver.iterations: expected int, got 'many'")
    _fails_clearly(["train", "--config", recipe, "--out", out, "--set", "model.predictor.kind=transferr"], capsys,
                   "model.predictor.kind")
    _fails_clearly(["train", "--config", recipe, "--out", out, "--set", "noequals"], capsys, "expected KEY=VALUE")
    _fails_clearly(["train", "--config", tmp_path / "missing.yaml", "--out", out], capsys,
                   "configuration file not found")
    (tmp_path / "broken.yaml").write_text("model: [unclosed")
    _fails_clearly(["train", "--config", tmp_path / "broken.yaml", "--out", out], capsys, "not valid YAML")
    _fails_clearly(["train", "--config", recipe, "--out", out, "--set", "data.split=nonsense"], capsys,
                   "unknown split 'nonsense'")
    _fails_clearly(["train", "--out", out], capsys, "give a recipe")
    assert not out.exists()


def test_eval_of_a_checkpoint_with_bootstrap(trained_run, synthetic_root, tmp_path, capsys):
    code, out, err = _main(["eval", "--checkpoint", trained_run, "--data", synthetic_root, "--bootstrap", "50",
                            "--out", tmp_path / "metrics.json", "--results-dir", tmp_path / "results"], capsys)
    assert code == 0, err
    assert "split synthetic: A = 12 classes, B = 12 classes" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["e2e"]["metrics"]) == {"A", "B", "all"}
    assert "low" in metrics["e2e"]["intervals"]["B"]["segm"]["AP"]
    results = json.loads((tmp_path / "results" / "results_e2e.json").read_text())
    assert results and {"bbox", "segmentation", "score"} <= set(results[0])


def test_predict_draws_and_writes_results(trained_run, synthetic_root, tmp_path, capsys):
    images = sorted((synthetic_root / "val").glob("*.png"))[:2]
    code, out, err = _main(["predict", "--checkpoint", trained_run / "model_final.pt", *images,
                            "--out", tmp_path / "drawn", "--score-threshold", "0"], capsys)
    assert code == 0, err
    for image in images:
        drawn = Image.open(tmp_path / "drawn" / f"{image.stem}.png")
        assert drawn.size == Image.open(image).size
    results = json.loads((tmp_path / "drawn" / "results.json").read_text())
    assert {r["file_name"] for r in results} == {image.name for image in images}


def test_checkpoint_errors(trained_run, synthetic_root, tmp_path, capsys):
    data = ["--data", synthetic_root]
    _fails_clearly(["eval", "--checkpoint", tmp_path / "nothing.pt", *data], capsys, "checkpoint not found")
    _fails_clearly(["eval", "--checkpoint", tmp_path, *data], capsys, "without checkpoints")
    good = (trained_run / "model_final.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    _fails_clearly(["eval", "--checkpoint", tmp_path / "truncated.pt", *data], capsys, "not a readable checkpoint")
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    _fails_clearly(["eval", "--checkpoint", tmp_path / "noise.pt", *data], capsys, "not a readable checkpoint")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    _fails_clearly(["eval", "--checkpoint", tmp_path / "foreign.pt", *data], capsys, "not a maskx checkpoint")


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_checkpoint_cannot_run_code(tmp_path, capsys, synthetic_root):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": "maskx-checkpoint", "payload": _RunsCode()}, f)
    torch.save({"format": "maskx-checkpoint", "version": 1, "payload": _RunsCode()}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        err = _fails_clearly(["eval", "--checkpoint", tmp_path / name, "--data", synthetic_root], capsys,
                             "checkpoint")
        assert "this must never run" not in err
    assert "this must never run" not in capsys.readouterr().out


def test_a_checkpoint_of_another_class_count(trained_run, tiny_coco, tmp_path, capsys):
    _fails_clearly(["eval", "--checkpoint", trained_run, "--annotations", tiny_coco.annotation_file,
                    "--images", tiny_coco.image_dir, "--split", "ids:1"], capsys, "categories differ")


def test_a_checkpoint_whose_weights_do_not_fit_its_configuration(trained_run, synthetic_root, tmp_path, capsys):
    state = torch.load(trained_run / "model_final.pt", weights_only=True)
    state["model_config"]["box"]["representation_size"] = 48
    torch.save(state, tmp_path / "mismatch.pt")
    _fails_clearly(["eval", "--checkpoint", tmp_path / "mismatch.pt", "--data", synthetic_root], capsys,
                   "do not fit its configuration")
    state["model_config"]["backbone"]["depth"] = 7
    torch.save(state, tmp_path / "bad_config.pt")
    _fails_clearly(["eval", "--checkpoint", tmp_path / "bad_config.pt", "--data", synthetic_root], capsys,
                   "model.backbone.depth")


def test_unreadable_images(trained_run, tmp_path, capsys):
    (tmp_path / "not_an_image.png").write_text("hello")
    _fails_clearly(["predict", "--checkpoint", trained_run, tmp_path / "not_an_image.png", "--out", tmp_path / "o"],
                   capsys, "not a readable image")
    _fails_clearly(["predict", "--checkpoint", trained_run, tmp_path / "missing.png", "--out", tmp_path / "o"],
                   capsys, "image not found")
    assert not (tmp_path / "o").exists()


def test_errors_from_a_real_process_have_no_traceback(tmp_path):
    finished = subprocess.run([sys.executable, "-m", "maskx", "eval", "--checkpoint", str(tmp_path / "x.pt"),
                               "--annotations", str(tmp_path / "gt.json"), "--images", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2
    assert finished.stderr.startswith("error: ") and "Traceback" not in finished.stderr
