"""Mask predictors: the mask head's features -> each RoI's mask logits for its class.

Three kinds (the paper's comparison):

- ``class_agnostic``: one 1x1-conv weight for every class (the baseline);
- ``class_specific``: a learned weight per class (Mask R-CNN; trained with masks for
  every class it is the fully supervised oracle);
- ``transfer``: every class's weight predicted by T from its detection weights.

Any but ``class_specific`` may add the class-agnostic MLP branch, whose logits are added
to every class's. Only the RoI's own class is ever computed (``ops.mask_logits``), at
training and at inference, so the cost does not grow with the number of classes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from maskx.model.config import PredictorConfig
from maskx.model.ops import DetectionOps
from maskx.model.weight_transfer import WeightTransfer


def mlp_branch(config: PredictorConfig, in_channels: int, resolution: int) -> nn.Sequential:
    """FC layers on the flattened head output -> one resolution x resolution logit map.

    The reference initialises the output layer with std 0.001 (its logits start near
    zero and the FCN logits dominate) and hidden layers with MSRAFill.
    """
    dims = [in_channels * resolution * resolution] + [config.mlp_hidden] * (config.mlp_layers - 1)
    layers: list[nn.Module] = [nn.Flatten()]
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        hidden = nn.Linear(d_in, d_out)
        nn.init.kaiming_normal_(hidden.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(hidden.bias)
        layers += [hidden, nn.ReLU(inplace=True)]
    output = nn.Linear(dims[-1], resolution * resolution)
    nn.init.normal_(output.weight, std=0.001)
    nn.init.zeros_(output.bias)
    layers.append(output)
    return nn.Sequential(*layers)


class MaskPredictor(nn.Module):
    """``forward(features, classes, box_predictor)`` -> mask logits [R, M, M] of each RoI's
    class; ``loss(...)`` their mean per-pixel sigmoid cross-entropy against target masks."""

    def __init__(self, config: PredictorConfig, num_classes: int, in_channels: int, resolution: int,
                 box_representation: int, ops: DetectionOps, embedding: Tensor | None = None):
        super().__init__()
        self.kind = config.kind
        self.resolution = resolution
        self.ops = ops
        if self.kind == "transfer":
            # The reference applies the predicted weights without a bias.
            self.transfer = WeightTransfer(config, num_classes, box_representation, in_channels, ops, embedding)
        else:
            rows = 1 if self.kind == "class_agnostic" else num_classes
            self.weight = nn.Parameter(torch.empty(rows, in_channels))
            self.bias = nn.Parameter(torch.zeros(rows))
            if self.kind == "class_agnostic":
                # A fan-based init of a single output channel can diverge (the reference
                # uses std 0.001 here too).
                nn.init.normal_(self.weight, std=0.001)
            else:
                nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.mlp = mlp_branch(config, in_channels, resolution) if config.mlp else None

    def class_weights(self, box_predictor: nn.Module) -> tuple[Tensor, Tensor | None]:
        """The mask logits' weights [C, K] (one row for class_agnostic) and bias."""
        if self.kind == "transfer":
            return self.transfer(box_predictor), None
        return self.weight, self.bias

    def _inputs(self, features: Tensor, classes: Tensor, box_predictor: nn.Module):
        weights, bias = self.class_weights(box_predictor)
        if self.kind == "class_agnostic":
            classes = torch.zeros_like(classes)
        agnostic = None
        if self.mlp is not None:
            agnostic = self.mlp(features).view(-1, self.resolution, self.resolution)
        return weights, classes, bias, agnostic

    def forward(self, features: Tensor, classes: Tensor, box_predictor: nn.Module,
                sigmoid: bool = False) -> Tensor:
        """``features`` [R, K, M, M], ``classes`` int64 [R] -> logits (or probabilities) [R, M, M]."""
        weights, classes, bias, agnostic = self._inputs(features, classes, box_predictor)
        return self.ops.mask_logits(features, weights, classes, bias, agnostic, sigmoid)

    def loss(self, features: Tensor, classes: Tensor, targets: Tensor, box_predictor: nn.Module) -> Tensor:
        """Mean per-pixel sigmoid cross-entropy against ``targets`` [R, M, M] in [0, 1]
        (zero, with zero gradients, for R = 0)."""
        weights, classes, bias, agnostic = self._inputs(features, classes, box_predictor)
        return self.ops.mask_loss(features, weights, classes, targets.to(features.dtype), bias, agnostic)
