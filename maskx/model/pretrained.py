"""Weights from files a user has: torchvision Mask R-CNN checkpoints and ImageNet ResNets.

Nothing is downloaded. A torchvision ``maskrcnn_resnet50_fpn`` state dict maps onto a
MaskXRCNN of the COCO configuration part by part: backbone, RPN and box head under the
same names, the mask head's convolutions and deconvolution into the mask branch's head,
and the per-class mask logits into a ``class_specific`` predictor. Parts whose shapes
differ (another class count) or that have no counterpart (T, the MLP branch) keep their
initialisation, and the report says which.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """A state dict from a ``torch.save`` file (plain, or under ``model``/``state_dict``),
    loaded with ``weights_only=True``: a weights file cannot run code."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a readable PyTorch weights file ({str(exc).splitlines()[0]})") from None
    for key in ("model", "state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in data.items()):
        raise ValueError(f"{path}: expected a state dict (parameter names -> tensors)")
    return data


# torchvision Mask R-CNN name -> MaskXRCNN name, for the parts whose names differ.
_RENAMES = (
    (re.compile(r"^roi_heads\.mask_head\.(\d+)\.0\.(weight|bias)$"),
     lambda m: f"roi_heads.mask_branch.head.mask_fcn{int(m[1]) + 1}.0.{m[2]}"),
    (re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$"),
     lambda m: f"roi_heads.mask_branch.head.mask_fcn{m[1]}.0.{m[2]}"),
    (re.compile(r"^roi_heads\.mask_predictor\.conv5_mask\.(weight|bias)$"),
     lambda m: f"roi_heads.mask_branch.head.conv5_mask.{m[1]}"),
    (re.compile(r"^roi_heads\.mask_predictor\.mask_fcn_logits\.(weight|bias)$"),
     lambda m: f"roi_heads.mask_branch.predictor.{m[1]}"),
    # Old torchvision checkpoints: RPN head conv without the Conv2dNormActivation wrapper.
    (re.compile(r"^rpn\.head\.conv\.(weight|bias)$"), lambda m: f"rpn.head.conv.0.0.{m[1]}"),
)


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    # Checkpoint entries not loaded, with the reason.
    skipped: dict[str, str] = field(default_factory=dict)
    # Model entries the checkpoint did not provide (they keep their initialisation).
    not_provided: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} ({', '.join(list(self.skipped)[:3])}"
                         f"{'...' if len(self.skipped) > 3 else ''})")
        if self.not_provided:
            parts.append(f"{len(self.not_provided)} model tensors not provided ("
                         f"{', '.join(self.not_provided[:3])}{'...' if len(self.not_provided) > 3 else ''})")
        return "; ".join(parts)


def _rename(key: str) -> str:
    for pattern, replace in _RENAMES:
        match = pattern.match(key)
        if match:
            return replace(match)
    return key


def load_torchvision_weights(model: nn.Module, state_dict: dict[str, Tensor] | str | os.PathLike) -> LoadReport:
    """Copy a torchvision Mask R-CNN (or Faster R-CNN) state dict into ``model`` where
    names and shapes match; returns what was loaded, skipped and left out."""
    if not isinstance(state_dict, dict):
        state_dict = read_state_dict(state_dict)
    own = model.state_dict()
    report = LoadReport()
    update = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue  # BatchNorm's step counter, not a weight (frozen norms have none)
        name = _rename(key)
        if name.endswith("mask_branch.predictor.weight") and value.dim() == 4:
            value = value.flatten(1)  # a 1x1 conv's [C, K, 1, 1] -> [C, K]
        if name not in own:
            report.skipped[key] = "no counterpart in this model"
        elif own[name].shape != value.shape:
            report.skipped[key] = f"shape {tuple(value.shape)} != {tuple(own[name].shape)}"
        else:
            update[name] = value
            report.loaded.append(name)
    model.load_state_dict(update, strict=False)
    report.not_provided = [k for k in own if k not in update and not k.endswith("num_batches_tracked")]
    return report
