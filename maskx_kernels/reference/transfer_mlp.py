"""The weight transfer function T written as an explicit chain of nn.functional layers."""
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor


def transfer_mlp(x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], negative_slope: float = 0.1) -> Tensor:
    h = x
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = F.linear(h, w, b)
        if i + 1 < len(weights):
            h = F.leaky_relu(h, negative_slope)
    return h
