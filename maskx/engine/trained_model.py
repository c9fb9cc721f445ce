"""A trained model read back from a checkpoint: detector, mask heads, categories, split.

An end-to-end run has one mask head (the model's own branch, named ``e2e``). A stage-wise
run has a detector and the mask heads trained on it, each with its name and the classes
it learned masks from. ``TrainedModel.model`` is a MaskXRCNN with one of the heads in
place (``use_head`` swaps it), so ``model(images)`` gives detections with masks.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import torch

from maskx.config import ConfigError, from_dict
from maskx.data.categories import CategoryMap
from maskx.engine.checkpoint import CheckpointError, load_checkpoint
from maskx.model import MaskBranch, MaskXRCNN, ModelConfig, PredictorConfig

E2E_HEAD = "e2e"


def _embedding_of(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor | None:
    """The fixed class embedding a predictor was built with (``transfer_input: embedding``)."""
    return state.get(f"{prefix}predictor.transfer.embedding")


@dataclass
class TrainedModel:
    model: MaskXRCNN
    # Every mask head by name, and the category ids each learned masks from.
    heads: dict[str, MaskBranch]
    head_mask_category_ids: dict[str, list[int]]
    category_map: CategoryMap
    # The class split the run trained with (its name, e.g. "voc"), for A/B evaluation.
    split: str
    iteration: int
    path: str
    head: str | None = None

    def use_head(self, name: str) -> MaskXRCNN:
        """Put head ``name`` in the model (which then predicts its masks) and return the model."""
        if name not in self.heads:
            raise ValueError(f"{self.path}: no mask head {name!r}; heads: {', '.join(self.heads) or 'none'}")
        self.model.roi_heads.mask_branch = self.heads[name]
        self.head = name
        return self.model

    def to(self, device: torch.device | str) -> TrainedModel:
        self.model.to(device)
        for head in self.heads.values():
            head.to(device)
        return self


def _model_config(state: dict[str, Any]) -> ModelConfig:
    try:
        return from_dict(ModelConfig, state["model_config"], "model")
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"{state['path']}: the model configuration is missing or invalid ({exc})") from None


def _load_state(module: torch.nn.Module, weights: dict, path: str, what: str) -> None:
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise CheckpointError(f"{path}: the {what} weights do not fit its configuration ("
                              f"{' '.join(line.strip() for line in first[:3])})") from None


def restore_trained_model(state: dict[str, Any]) -> TrainedModel:
    """Build the model and its heads from a checkpoint dict (``load_checkpoint``)."""
    path = state["path"]
    config = _model_config(state)
    try:
        categories = state["categories"]
        category_map = CategoryMap(categories)
        heads_state = state.get("heads", {})
        split = state["split"]
        model_weights = state["model"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete checkpoint ({exc!r})") from None
    if category_map.num_classes != config.num_classes:
        raise CheckpointError(f"{path}: {len(category_map)} categories but a model of {config.num_classes} classes")
    heads: dict[str, MaskBranch] = {}
    head_ids: dict[str, list[int]] = {}
    if config.mask_on:
        model = MaskXRCNN(config, embedding=_embedding_of(model_weights, "roi_heads.mask_branch."))
        _load_state(model, model_weights, path, "model")
        heads[E2E_HEAD] = model.roi_heads.mask_branch
        head_ids[E2E_HEAD] = list(state.get("mask_category_ids", []))
    else:
        if not heads_state:
            # A detector alone (stage 1): no masks to predict.
            model = MaskXRCNN(config)
            _load_state(model, model_weights, path, "detector")
        else:
            first = next(iter(heads_state.values()))
            predictor = from_dict(PredictorConfig, first["predictor"], "predictor")
            model = MaskXRCNN(dataclasses.replace(config, mask_on=True, predictor=predictor),
                              embedding=_embedding_of(first["state"], ""))
            missing, unexpected = model.load_state_dict(model_weights, strict=False)
            if unexpected or any(not k.startswith("roi_heads.mask_branch.") for k in missing):
                raise CheckpointError(f"{path}: the detector weights do not fit its configuration")
    for name, head in heads_state.items():
        try:
            predictor = from_dict(PredictorConfig, head["predictor"], f"heads.{name}.predictor")
            branch = model.new_mask_branch(predictor, embedding=_embedding_of(head["state"], ""))
            _load_state(branch, head["state"], path, f"mask head {name!r}")
        except (KeyError, ConfigError) as exc:
            raise CheckpointError(f"{path}: mask head {name!r} is incomplete ({exc})") from None
        heads[name] = branch
        head_ids[name] = list(head.get("mask_category_ids", []))
    trained = TrainedModel(model, heads, head_ids, category_map, split, int(state.get("iteration", 0)), path)
    if heads:
        trained.use_head(next(iter(heads)))
    model.eval()
    for head in heads.values():
        head.eval()
    return trained


def load_trained_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> TrainedModel:
    """A checkpoint file (or a run directory: its final or newest checkpoint) as a model."""
    return restore_trained_model(load_checkpoint(path)).to(device)
