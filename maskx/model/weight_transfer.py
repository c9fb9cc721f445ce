"""The weight transfer function T of Mask^X R-CNN.

For every class c, ``w_seg[c] = T(w_det[c])``: a small MLP shared by all classes maps the
class's detection weights (or a fixed class embedding) to the weight vector of its mask
logits, the 1x1 convolution over the mask head's features. T is trained on the classes
with masks (set A) and applied to every class at test time; that is how classes with box
labels only (set B) get masks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

import maskx_kernels as mk
from maskx.model.config import PredictorConfig
from maskx.model.ops import DetectionOps

# Slope of the activation between T's layers; a slope of 1 is no activation at all.
ACTIVATION_SLOPE = {"none": 1.0, "relu": 0.0, "leaky_relu": 0.1}
_DETECTION_INPUTS = ("cls", "box", "cls+box")


def input_dim(config: PredictorConfig, box_representation: int, embedding: Tensor | None) -> int:
    """Width of T's input rows for ``config.transfer_input``."""
    kind = config.transfer_input
    if kind in _DETECTION_INPUTS:
        return {"cls": 1, "box": 4, "cls+box": 5}[kind] * box_representation
    if kind == "randn":
        return config.randn_dim
    if embedding is None:
        raise ValueError("transfer_input 'embedding' needs the embedding matrix")
    return embedding.shape[1]


class WeightTransfer(nn.Module):
    """T, with its input rows: detection weights of the box predictor or a fixed embedding.

    ``forward(box_predictor)`` returns the mask weights of every class, [C, mask_channels]
    (background included, like the box predictor's rows).
    """

    def __init__(self, config: PredictorConfig, num_classes: int, box_representation: int,
                 mask_channels: int, ops: DetectionOps, embedding: Tensor | None = None):
        super().__init__()
        self.kind = config.transfer_input
        self.stop_gradient = config.stop_gradient
        self.negative_slope = ACTIVATION_SLOPE[config.transfer_activation]
        self.ops = ops
        if self.kind == "randn":
            # Fixed vectors, the same for every build of this configuration (the paper's
            # 'randn' ablation: class identity without any learned similarity), scaled to
            # about unit norm like the detection-weight rows T otherwise reads: unscaled
            # rows (norm sqrt(randn_dim)) drove T's output weights up and the head learned
            # no masks at all.
            generator = torch.Generator().manual_seed(0)
            rows = torch.randn(num_classes, config.randn_dim, generator=generator) / config.randn_dim**0.5
            self.register_buffer("embedding", rows)
        elif self.kind == "embedding":
            if embedding is None or embedding.shape[0] != num_classes:
                raise ValueError(f"the class embedding must have {num_classes} rows (one per label, "
                                 f"background first), got {None if embedding is None else tuple(embedding.shape)}")
            self.register_buffer("embedding", embedding.float().clone())
        dims = [input_dim(config, box_representation, embedding)]
        dims += [config.transfer_hidden] * (config.transfer_layers - 1) + [mask_channels]
        self.layers = nn.ModuleList(nn.Linear(d_in, d_out) for d_in, d_out in zip(dims[:-1], dims[1:]))
        for layer in self.layers:
            # The reference's MSRAFill: std sqrt(2 / fan_out); zero biases.
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def inputs(self, box_predictor: nn.Module) -> Tensor:
        """T's input rows [C, D]."""
        if self.kind in _DETECTION_INPUTS:
            return mk.detection_embedding(box_predictor.cls_score.weight, box_predictor.bbox_pred.weight,
                                          self.kind, detach=self.stop_gradient)
        return self.embedding

    def forward(self, box_predictor: nn.Module) -> Tensor:
        return self.ops.transfer(self.inputs(box_predictor), [layer.weight for layer in self.layers],
                                 [layer.bias for layer in self.layers], self.negative_slope)


def load_class_embedding(path: str | os.PathLike, num_classes: int,
                         category_names: Sequence[str] | None = None) -> Tensor:
    """A fixed class embedding [num_classes, E] from a file, background row first (zeros).

    - ``.npy``: an array with one row per class in label order, ``num_classes - 1`` rows
      (the background row is added) or ``num_classes`` rows.
    - any other suffix: word vectors in GloVe's text format (``word v1 v2 ...`` per line);
      each class takes the vector of its name, the mean of its words' vectors for a name
      of several words (e.g. "traffic light"), so ``category_names`` are needed.
    """
    path = os.fspath(path)
    if path.endswith(".npy"):
        try:
            rows = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot be read as a .npy array ({exc})") from None
        if rows.ndim != 2 or rows.shape[0] not in (num_classes - 1, num_classes):
            raise ValueError(f"{path}: expected an array of {num_classes - 1} (or {num_classes}) rows, "
                             f"got shape {rows.shape}")
        if not np.isfinite(rows).all():
            raise ValueError(f"{path}: the embedding has non-finite values")
        table = torch.from_numpy(np.asarray(rows, dtype=np.float32))
        if table.shape[0] == num_classes - 1:
            table = torch.cat([table.new_zeros(1, table.shape[1]), table])
        return table
    if category_names is None or len(category_names) != num_classes - 1:
        raise ValueError(f"{path}: word vectors are looked up by class name; need {num_classes - 1} names")
    words = {word for name in category_names for word in name.lower().split()}
    vectors: dict[str, np.ndarray] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                word, _, rest = line.rstrip().partition(" ")
                if word in words:
                    try:
                        vectors[word] = np.array(rest.split(), dtype=np.float32)
                    except ValueError:
                        raise ValueError(f"{path}:{line_number}: not a word vector line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from None
    missing = sorted(words - vectors.keys())
    if missing:
        raise ValueError(f"{path}: no vector for {missing[:5]}{'...' if len(missing) > 5 else ''}")
    dims = {v.shape[0] for v in vectors.values()}
    if len(dims) != 1:
        raise ValueError(f"{path}: word vectors of different lengths {sorted(dims)}")
    rows = [np.mean([vectors[w] for w in name.lower().split()], axis=0) for name in category_names]
    table = torch.from_numpy(np.stack(rows))
    return torch.cat([table.new_zeros(1, table.shape[1]), table])
