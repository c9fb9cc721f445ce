"""ResNet-FPN backbone with a width multiplier and a choice of normalisation.

torchvision's ``resnet_fpn_backbone`` builds the standard widths only. Training from
scratch on two CPU cores calls for narrower networks, so the ResNet body is assembled
here from torchvision's own residual blocks, with torchvision's module names (``conv1``,
``bn1``, ``layer1`` .. ``layer4``): at width 1.0 it takes ImageNet weights and torchvision
Mask R-CNN checkpoints unchanged.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable

from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from maskx.model.config import BackboneConfig

_BLOCKS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups, fewer (at least 4 channels each) for narrow layers."""
    groups = math.gcd(32, max(1, channels // 4))
    return nn.GroupNorm(groups, channels)


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    if kind == "frozen_bn":
        return FrozenBatchNorm2d
    if kind == "bn":
        return nn.BatchNorm2d
    if kind == "gn":
        return group_norm
    raise ValueError(f"unknown norm {kind!r}")


class ResNetBody(nn.Module):
    """The convolutional part of torchvision's ResNet (no pooling head, no fc).

    Only a container of named stages: torchvision's ``IntermediateLayerGetter`` (inside
    ``BackboneWithFPN``) runs its children in order and returns every stage's output.
    """

    def __init__(self, depth: int, width: float, norm: Callable[[int], nn.Module]):
        super().__init__()
        block, counts = _BLOCKS[depth]
        widths = [max(8, int(round(w * width / 8)) * 8) for w in (64, 128, 256, 512)]
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (planes, count) in enumerate(zip(widths, counts)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._stage(block, planes, count, stride, norm))
        self.stage_channels = [w * block.expansion for w in widths]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Each residual branch starts as zero, so every block starts as the identity: the
        # usual recipe for training deep ResNets from scratch (Goyal et al., 2017).
        for module in self.modules():
            if isinstance(module, (BasicBlock, Bottleneck)):
                last = module.bn3 if isinstance(module, Bottleneck) else module.bn2
                if isinstance(last, (nn.BatchNorm2d, nn.GroupNorm)):
                    nn.init.zeros_(last.weight)

    def _stage(self, block, planes: int, count: int, stride: int, norm) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                norm(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, norm_layer=norm)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, norm_layer=norm) for _ in range(1, count)]
        return nn.Sequential(*layers)


def load_imagenet_weights(body: ResNetBody, path: str | os.PathLike) -> None:
    """Load a torchvision ResNet state-dict file (e.g. ``resnet50-0676ba61.pth``) into ``body``."""
    from maskx.model.pretrained import read_state_dict

    state = read_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = body.load_state_dict(state, strict=False)
    # FrozenBatchNorm2d has no num_batches_tracked; BatchNorm2d tolerates its absence.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in unexpected if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"{path}: not a state dict of this ResNet body; missing {missing[:4]}"
            f"{'...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
            f"{'...' if len(unexpected) > 4 else ''}")


def build_backbone(config: BackboneConfig) -> BackboneWithFPN:
    """ResNet body + FPN over its four stages + a max-pooled P6: five levels '0'..'3', 'pool'."""
    body = ResNetBody(config.depth, config.width, norm_layer(config.norm))
    if config.weights:
        if config.width != 1.0:
            raise ValueError("backbone.weights: ImageNet weights exist for width 1.0 only")
        load_imagenet_weights(body, config.weights)
    # torchvision's rule: the last `trainable_stages` of layer4 .. layer1, conv1 train.
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:config.trainable_stages]
    if config.trainable_stages == 5:
        trainable.append("bn1")
    for name, parameter in body.named_parameters():
        if not name.startswith(tuple(trainable)):
            parameter.requires_grad_(False)
    return_layers = OrderedDict((f"layer{i}", str(i - 1)) for i in range(1, 5))
    return BackboneWithFPN(body, return_layers, body.stage_channels, config.fpn_channels,
                           extra_blocks=LastLevelMaxPool())
