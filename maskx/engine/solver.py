"""Optimizer and learning-rate schedule from a ``SolverConfig``."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch
from torch import nn

from maskx.engine.config import SolverConfig

_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.SyncBatchNorm)


@dataclass(frozen=True)
class Schedule:
    """The schedule of one run, after the linear scaling rule for its effective batch."""

    base_lr: float
    iterations: int
    steps: tuple[int, ...]
    gamma: float
    warmup_iterations: int
    warmup_factor: float
    effective_batch_size: int

    def learning_rate(self, iteration: int) -> float:
        """Linear warm-up from ``warmup_factor * base_lr``, then a step decay by ``gamma``."""
        lr = self.base_lr * self.gamma ** bisect.bisect_right(self.steps, iteration)
        if iteration < self.warmup_iterations:
            alpha = iteration / self.warmup_iterations
            lr *= self.warmup_factor * (1 - alpha) + alpha
        return lr


def resolve_schedule(solver: SolverConfig, effective_batch_size: int) -> Schedule:
    scale = effective_batch_size / solver.reference_batch_size if solver.scale_with_batch else 1.0
    def length(iterations: int) -> int:
        return max(0, round(iterations / scale))
    return Schedule(
        base_lr=solver.base_lr * scale,
        iterations=max(1, length(solver.iterations)),
        steps=tuple(length(s) for s in solver.steps),
        gamma=solver.gamma,
        warmup_iterations=length(solver.warmup_iterations),
        warmup_factor=solver.warmup_factor,
        effective_batch_size=effective_batch_size,
    )


def build_optimizer(modules: list[nn.Module], solver: SolverConfig) -> torch.optim.Optimizer:
    """SGD (or AdamW) over the trainable parameters of ``modules``; normalisation layers
    get ``weight_decay_norm``."""
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for layer in module.modules():
            for parameter in layer.parameters(recurse=False):
                if not parameter.requires_grad or id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                (no_decay if isinstance(layer, _NORMS) else decay).append(parameter)
    if not decay and not no_decay:
        raise ValueError("nothing to train: every parameter is frozen")
    groups = [{"params": decay, "weight_decay": solver.weight_decay},
              {"params": no_decay, "weight_decay": solver.weight_decay_norm}]
    groups = [g for g in groups if g["params"]]
    if solver.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=solver.base_lr, momentum=solver.momentum)
    return torch.optim.AdamW(groups, lr=solver.base_lr)
