"""Mask^X R-CNN on torchvision's detection models, with maskx_kernels on the hot paths.

- ``config``: ``ModelConfig`` and its parts (the paper's ablation axes in ``PredictorConfig``);
- ``backbone``: ResNet-FPN with a width multiplier and a choice of normalisation;
- ``ops``: the hot-path operations, maskx or torchvision (``ModelConfig.ops``);
- ``weight_transfer``: T, from detection weights (or an embedding) to mask weights;
- ``mask_predictor`` / ``mask_head``: the mask branch (FCN head + predictor);
- ``rpn`` / ``roi_heads``: torchvision's with partial mask supervision and the ops swapped;
- ``maskx_rcnn``: the assembled model; ``pretrained``: torchvision / ImageNet weights.
"""

from maskx.model.config import (
    BackboneConfig,
    BoxHeadConfig,
    MaskHeadConfig,
    ModelConfig,
    PredictorConfig,
    RPNConfig,
)
from maskx.model.mask_head import MaskBranch
from maskx.model.maskx_rcnn import MaskXRCNN
from maskx.model.pretrained import LoadReport, load_torchvision_weights, read_state_dict
from maskx.model.weight_transfer import load_class_embedding

__all__ = [
    "BackboneConfig",
    "BoxHeadConfig",
    "LoadReport",
    "MaskBranch",
    "MaskHeadConfig",
    "MaskXRCNN",
    "ModelConfig",
    "PredictorConfig",
    "RPNConfig",
    "load_class_embedding",
    "load_torchvision_weights",
    "read_state_dict",
]
