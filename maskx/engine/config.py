"""A training run's configuration: model, data, solver, schedule and the mask heads to train.

Read from a YAML recipe (``configs/*.yaml``) plus ``KEY=VALUE`` overrides; every key and
value is checked (``maskx.config``). Every run writes the resolved configuration next to
its checkpoints, and every checkpoint carries it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from maskx.config import ConfigError, apply_overrides, from_dict, load_yaml
from maskx.model.config import ModelConfig, PredictorConfig


@dataclass
class DataConfig:
    """Where the data is and how it is batched.

    Either ``root`` in the standard layout (``root/annotations/instances_{subset}.json``
    and ``root/{subset}/``) or explicit annotation files and image folders.
    """

    root: str | None = None
    train_subset: str = "train"
    val_subset: str = "val"
    train_annotations: str | None = None
    train_images: str | None = None
    val_annotations: str | None = None
    val_images: str | None = None
    # Which classes have masks (set A): a split name (voc, nonvoc, E1_A20B60, synthetic,
    # synthetic_disjoint, synthetic_A18B6, synthetic_composed, synthetic_composed_unseen,
    # ids:..., names:...) or "all" for full supervision (the oracle).
    split: str = "synthetic"
    # Images per step in each process; the effective batch is this times the world size.
    images_per_batch: int = 2
    num_workers: int = 0
    flip_probability: float = 0.5
    # Keep decoded images and targets in memory after the first epoch (small data sets).
    cache: bool = False

    def check(self) -> None:
        if self.root is None and not (self.train_annotations and self.train_images):
            raise ConfigError("root: give a data root, or train_annotations and train_images")
        if self.images_per_batch < 1 or self.num_workers < 0:
            raise ConfigError("images_per_batch: expected >= 1 (and num_workers >= 0)")
        if not 0 <= self.flip_probability <= 1:
            raise ConfigError(f"flip_probability: expected a value in [0, 1], got {self.flip_probability}")


@dataclass
class SolverConfig:
    """SGD with linear warm-up and step decay (the Detectron schedule).

    ``base_lr``, ``iterations``, ``steps`` and ``warmup_iterations`` are stated for
    ``reference_batch_size`` images per step. With ``scale_with_batch`` a run of another
    effective batch size (images_per_batch x processes) scales the learning rate linearly
    and the schedule inversely (the linear scaling rule), so the same recipe runs on 1 or
    8 GPUs.
    """

    optimizer: Literal["sgd", "adamw"] = "sgd"
    base_lr: float = 0.02
    reference_batch_size: int = 16
    scale_with_batch: bool = True
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # Weight decay of normalisation layers' scales and shifts (detectron2: 0).
    weight_decay_norm: float = 0.0
    iterations: int = 90000
    steps: tuple[int, ...] = (60000, 80000)
    gamma: float = 0.1
    warmup_iterations: int = 1000
    warmup_factor: float = 0.001
    clip_grad_norm: float | None = None

    def check(self) -> None:
        if self.base_lr <= 0 or self.iterations < 1 or self.reference_batch_size < 1:
            raise ConfigError("base_lr: expected base_lr > 0, iterations >= 1 and reference_batch_size >= 1")
        if list(self.steps) != sorted(self.steps):
            raise ConfigError(f"steps: expected increasing iterations, got {list(self.steps)}")
        if self.warmup_iterations < 0 or not 0 < self.warmup_factor <= 1:
            raise ConfigError("warmup_iterations: expected >= 0 with warmup_factor in (0, 1]")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ConfigError("clip_grad_norm: expected a positive norm or null")


@dataclass
class TrainConfig:
    """What is trained and how the run is kept."""

    # e2e: detector and mask branch together (box losses on A and B, mask loss on A);
    # detector: stage 1, boxes only; mask: stage 2, mask heads on a frozen detector.
    stage: Literal["e2e", "detector", "mask"] = "e2e"
    # Stage "mask": the stage-1 checkpoint to train on.
    detector: str | None = None
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Intra-op threads per process (null: PyTorch's default).
    threads: int | None = None
    log_period: int = 20
    checkpoint_period: int = 500
    keep_checkpoints: int = 3

    def check(self) -> None:
        if self.stage == "mask" and not self.detector:
            raise ConfigError("detector: stage 'mask' trains on a stage-1 checkpoint; set train.detector")
        if self.log_period < 1 or self.checkpoint_period < 1 or self.keep_checkpoints < 1:
            raise ConfigError("log_period: log_period, checkpoint_period and keep_checkpoints must be >= 1")


@dataclass
class HeadConfig:
    """One mask head of a stage-'mask' run: its predictor and which classes it learns
    masks from (``split``: null = the run's ``data.split``, "all" = every class)."""

    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    split: str | None = None


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(root="data"))
    solver: SolverConfig = field(default_factory=SolverConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Stage "mask": several heads trained side by side on the same detector and RoIs; when
    # empty, one head with model.predictor.
    heads: dict[str, HeadConfig] = field(default_factory=dict)

    def check(self) -> None:
        for name in self.heads:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ConfigError(f"heads: head names are letters, digits, '_' and '-', got {name!r}")
        if self.heads and self.train.stage != "mask":
            raise ConfigError("heads: named heads are trained by stage 'mask' (train.stage)")


def load_run_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> RunConfig:
    """A recipe file (or the defaults when ``path`` is None) with ``KEY=VALUE`` overrides."""
    data = load_yaml(path) if path is not None else {}
    return from_dict(RunConfig, apply_overrides(data, overrides))
