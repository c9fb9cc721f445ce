"""The mask branch: the FCN mask head and the mask predictor on top of it.

The head is Mask R-CNN's: 3x3 convolutions with ReLU over the 14x14 pooled RoI features,
then a 2x2 deconvolution to 28x28 (module names as in torchvision's checkpoints, so those
weights load). The branch is what stage-wise training trains, and what several variants
(class-agnostic, transfer, oracle, ...) swap on one detector.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from maskx.model.backbone import group_norm
from maskx.model.config import MaskHeadConfig, PredictorConfig
from maskx.model.mask_predictor import MaskPredictor
from maskx.model.ops import DetectionOps


class MaskHead(nn.Sequential):
    """[R, C, S, S] pooled features -> [R, K, 2S, 2S] mask features."""

    def __init__(self, in_channels: int, config: MaskHeadConfig):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for i in range(config.conv_layers):
            layers[f"mask_fcn{i + 1}"] = Conv2dNormActivation(
                channels, config.channels, kernel_size=3,
                norm_layer=group_norm if config.norm == "gn" else None)
            channels = config.channels
        layers["conv5_mask"] = nn.ConvTranspose2d(channels, config.channels, kernel_size=2, stride=2)
        layers["relu5"] = nn.ReLU(inplace=True)
        super().__init__(layers)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


class MaskBranch(nn.Module):
    """Mask head + predictor: pooled RoI features -> each RoI's mask logits for its class."""

    def __init__(self, in_channels: int, head: MaskHeadConfig, predictor: PredictorConfig, num_classes: int,
                 box_representation: int, ops: DetectionOps, embedding: Tensor | None = None):
        super().__init__()
        self.head = MaskHead(in_channels, head)
        self.predictor = MaskPredictor(predictor, num_classes, head.channels, 2 * head.pool_size,
                                       box_representation, ops, embedding)

    def forward(self, pooled: Tensor, classes: Tensor, box_predictor: nn.Module,
                sigmoid: bool = False) -> Tensor:
        return self.predictor(self.head(pooled), classes, box_predictor, sigmoid)

    def loss(self, pooled: Tensor, classes: Tensor, targets: Tensor, box_predictor: nn.Module) -> Tensor:
        return self.predictor.loss(self.head(pooled), classes, targets, box_predictor)
