"""Training (maskx.engine): losses that go down, exact resume, signals, stage-wise heads,
checkpoints that load, and two-process data parallel training under torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from maskx.config import from_dict
from maskx.engine.checkpoint import load_checkpoint, periodic_checkpoints
from maskx.engine.config import RunConfig, load_run_config
from maskx.engine.inference import predict
from maskx.engine.metrics import read_metrics
from maskx.engine.trained_model import load_trained_model
from maskx.engine.trainer import TrainingDiverged, train
from maskx.evaluation import encode_masks
from model_recipes import tiny_recipe

REPO = Path(__file__).resolve().parents[1]

def _losses(run_dir) -> dict[int, dict]:
    return {r["iteration"]: {k: v for k, v in r.items() if k.startswith("loss")}
            for r in read_metrics(Path(run_dir) / "metrics.jsonl")}


def test_a_few_iterations_reduce_the_loss(synthetic_root, tmp_path):
    config = from_dict(RunConfig, tiny_recipe(synthetic_root, solver={"iterations": 40, "base_lr": 0.01},
                                              train={"log_period": 1, "checkpoint_period": 100}))
    result = train(config, tmp_path / "run", progress=False)
    losses = [record["loss"] for record in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert len(losses) == 40 and result.iterations == 40
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8, losses
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["model"]["num_classes"] == 25  # from the data, not the default 81


def test_resume_reproduces_the_uninterrupted_run(synthetic_root, tmp_path):
    config = from_dict(RunConfig, tiny_recipe(synthetic_root))
    train(config, tmp_path / "full", progress=False)
    # A run stopped after its checkpoint at iteration 3: its directory as it was then.
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "config.yaml").write_text((tmp_path / "full" / "config.yaml").read_text())
    (stopped / "model_0000003.pt").write_bytes((tmp_path / "full" / "model_0000003.pt").read_bytes())
    lines = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    # ... plus a record written after the checkpoint, before the interruption.
    (stopped / "metrics.jsonl").write_text("\n".join(lines[:4]) + "\n")
    resumed = load_run_config(stopped / "config.yaml")
    train(resumed, stopped, resume=True, progress=False)
    full, again = _losses(tmp_path / "full"), _losses(stopped)
    assert sorted(again) == list(range(1, 7))
    for iteration in (4, 5, 6):
        assert again[iteration] == full[iteration]  # bit for bit
    final_a = load_checkpoint(tmp_path / "full" / "model_final.pt")["model"]
    final_b = load_checkpoint(stopped / "model_final.pt")["model"]
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_resume_refuses_another_configuration(synthetic_root, tmp_path):
    train(from_dict(RunConfig, tiny_recipe(synthetic_root)), tmp_path / "run", progress=False)
    other = from_dict(RunConfig, tiny_recipe(synthetic_root, solver={"base_lr": 0.03}))
    with pytest.raises(ValueError, match="solver.base_lr"):
        train(other, tmp_path / "run", resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(other, tmp_path / "run", progress=False)


def test_checkpoints_rotate_and_are_written_atomically(synthetic_root, tmp_path, monkeypatch):
    config = from_dict(RunConfig, tiny_recipe(synthetic_root, solver={"iterations": 7},
                                              train={"checkpoint_period": 1, "keep_checkpoints": 2}))
    train(config, tmp_path / "run", progress=False)
    assert [p.name for p in periodic_checkpoints(tmp_path / "run")] == ["model_0000005.pt", "model_0000006.pt"]
    assert not list((tmp_path / "run").glob("*.tmp"))
    # A crash while writing leaves the previous file intact and no temporary behind.
    from maskx.engine import checkpoint

    target = tmp_path / "run" / "model_0000006.pt"
    before = target.read_bytes()

    def failing_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_atomic({"model": {}}, target)
    assert target.read_bytes() == before
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_diverging_loss_is_a_clear_error(synthetic_root, tmp_path):
    config = from_dict(RunConfig, tiny_recipe(synthetic_root, solver={"base_lr": 1e6, "warmup_iterations": 0,
                                                                      "iterations": 30}))
    with pytest.raises(TrainingDiverged, match="the loss became"):
        train(config, tmp_path / "run", progress=False)


def test_stage_wise_training_of_several_heads_on_one_detector(synthetic_root, tmp_path):
    detector = from_dict(RunConfig, tiny_recipe(synthetic_root, train={"stage": "detector"}))
    train(detector, tmp_path / "detector", progress=False)
    saved = load_checkpoint(tmp_path / "detector" / "model_final.pt")
    assert not any("mask_branch" in k for k in saved["model"])
    heads = {"agnostic": {"predictor": {"kind": "class_agnostic"}},
             "transfer_mlp": {"predictor": {"kind": "transfer", "mlp": True}},
             "oracle": {"predictor": {"kind": "class_specific"}, "split": "all"}}
    config = from_dict(RunConfig, {**tiny_recipe(synthetic_root, train={
        "stage": "mask", "detector": str(tmp_path / "detector" / "model_final.pt")}), "heads": heads})
    train(config, tmp_path / "heads", progress=False)
    records = read_metrics(tmp_path / "heads" / "metrics.jsonl")
    assert {"loss_mask/agnostic", "loss_mask/transfer_mlp", "loss_mask/oracle"} <= set(records[-1])
    trained = load_trained_model(tmp_path / "heads")
    assert list(trained.heads) == list(heads)
    assert len(trained.head_mask_category_ids["oracle"]) == 24
    assert len(trained.head_mask_category_ids["agnostic"]) == 12
    # The detector is frozen: stage 2 leaves its weights as stage 1 saved them.
    state = trained.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved["model"].items())
    images = [torch.rand(3, 100, 120)]
    for name in heads:
        with torch.no_grad():
            detections = trained.use_head(name)(images)
        assert detections[0]["masks"].shape[1:] == (1, 100, 120)
    # Evaluation's masks (RLE straight from the pasting kernel) are the model's masks.
    trained.model.roi_heads.score_thresh = 0.0
    pasted, encoded = predict(trained, images), predict(trained, images, rle=True)
    for name in heads:
        assert len(encoded[name][0]["masks"]) == len(pasted[name][0]["boxes"]) > 0
        assert encode_masks(pasted[name][0]["masks"]) == encode_masks(encoded[name][0]["masks"])


def test_stage_mask_needs_a_detector_checkpoint(synthetic_root, tmp_path):
    train(from_dict(RunConfig, tiny_recipe(synthetic_root)), tmp_path / "e2e", progress=False)
    config = from_dict(RunConfig, tiny_recipe(synthetic_root, train={
        "stage": "mask", "detector": str(tmp_path / "e2e" / "model_final.pt")}))
    with pytest.raises(ValueError, match="stage-1"):
        train(config, tmp_path / "heads", progress=False)


def _write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def _wait_for(predicate, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_sigterm_saves_a_checkpoint_and_resume_finishes_the_run(synthetic_root, tmp_path):
    # The signal goes out once the first iteration is logged; the run is long enough (a tiny
    # iteration takes about 0.05 s) that it cannot finish before the signal lands.
    iterations = 60
    recipe = _write_recipe(tmp_path / "recipe.yaml", tiny_recipe(
        synthetic_root, solver={"iterations": iterations}, train={"checkpoint_period": 10 * iterations}))
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "maskx", "train", "--config", str(recipe), "--out", str(run_dir), "--no-progress"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    _wait_for(lambda: metrics.is_file() and metrics.read_text().count("\n") >= 1, 120, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    (checkpoint,) = periodic_checkpoints(run_dir)
    stopped_at = load_checkpoint(checkpoint)["iteration"]
    assert 1 <= stopped_at < iterations
    assert load_trained_model(checkpoint).iteration == stopped_at
    finished = subprocess.run([sys.executable, "-m", "maskx", "train", "--out", str(run_dir), "--resume",
                               "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert sorted(_losses(run_dir)) == list(range(1, iterations + 1))
    assert (run_dir / "model_final.pt").is_file()


def test_two_processes_train_identical_parameters(synthetic_root, tmp_path):
    """torchrun with 2 gloo processes: DistributedDataParallel keeps the ranks in step."""
    recipe = _write_recipe(tmp_path / "recipe.yaml", tiny_recipe(
        synthetic_root, data={"images_per_batch": 1}, solver={"iterations": 3}))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "tests" / "ddp_probe.py"), str(recipe), str(tmp_path / "run")]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    ranks = [torch.load(tmp_path / "run" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    start = torch.load(tmp_path / "run" / "rank0_initial.pt", weights_only=True)
    assert ranks[0].keys() == ranks[1].keys()
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert any(not torch.equal(ranks[0][k], start[k]) for k in start), "the parameters must have changed"
    info = json.loads((tmp_path / "run" / "probe.json").read_text())
    # Each process saw its own images: the effective batch is 2, the two ranks' data differ.
    assert info["effective_batch_size"] == 2 and info["batches_differ"]
