"""The model's configuration: one dataclass per part, carried by every checkpoint.

Defaults are the COCO configuration of the paper (ResNet-50-FPN, torchvision's RPN and
two-FC box head, the 4-conv FCN mask head, transfer with cls+box input, a 2-layer T with
LeakyReLU). ``configs/*.yaml`` override them per recipe; ``PredictorConfig`` spans the
paper's ablation axes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from maskx.config import ConfigError


@dataclass
class BackboneConfig:
    """A ResNet body with an FPN on its four stages (torchvision's ``resnet_fpn_backbone``)."""

    depth: Literal[18, 34, 50, 101, 152] = 50
    # Channel multiplier of every ResNet stage; 1.0 is the standard network (and the only
    # width ImageNet weights exist for).
    width: float = 1.0
    # frozen_bn: BatchNorm statistics and affine fixed (pretrained backbones); bn / gn:
    # trained (from scratch).
    norm: Literal["frozen_bn", "bn", "gn"] = "frozen_bn"
    # How many of the five stages (stem, layer1..layer4) train, counted from the top.
    trainable_stages: int = 3
    fpn_channels: int = 256
    # An ImageNet state-dict file of the torchvision ResNet (fc.* is ignored).
    weights: str | None = None

    def check(self) -> None:
        if not 0 < self.width <= 4:
            raise ConfigError(f"width: expected a multiplier in (0, 4], got {self.width}")
        if not 0 <= self.trainable_stages <= 5:
            raise ConfigError(f"trainable_stages: expected 0..5, got {self.trainable_stages}")
        if self.fpn_channels < 1:
            raise ConfigError(f"fpn_channels: expected a positive channel count, got {self.fpn_channels}")


@dataclass
class RPNConfig:
    """torchvision's RegionProposalNetwork settings (its defaults)."""

    # One anchor size per FPN level (P2..P6), in pixels of the resized image.
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    pre_nms_top_n_train: int = 2000
    post_nms_top_n_train: int = 2000
    pre_nms_top_n_test: int = 1000
    post_nms_top_n_test: int = 1000
    nms_thresh: float = 0.7
    fg_iou_thresh: float = 0.7
    bg_iou_thresh: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5

    def check(self) -> None:
        if len(self.anchor_sizes) != 5:
            raise ConfigError(f"anchor_sizes: expected one size per FPN level (5), got {len(self.anchor_sizes)}")


@dataclass
class BoxHeadConfig:
    """RoI box head: pooling, two FC layers, classifier and per-class box regression."""

    pool_size: int = 7
    sampling_ratio: int = 2
    representation_size: int = 1024
    fg_iou_thresh: float = 0.5
    bg_iou_thresh: float = 0.5
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    reg_weights: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0)
    # Inference.
    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_image: int = 100

    def check(self) -> None:
        if len(self.reg_weights) != 4:
            raise ConfigError("reg_weights: expected four weights (x, y, w, h)")
        if not 0 <= self.score_thresh <= 1 or not 0 <= self.nms_thresh <= 1:
            raise ConfigError("score_thresh / nms_thresh: expected values in [0, 1]")


@dataclass
class MaskHeadConfig:
    """The FCN mask head: RoIAlign to 14x14, 3x3 convs, a 2x deconvolution to 28x28."""

    pool_size: int = 14
    sampling_ratio: int = 2
    conv_layers: int = 4
    channels: int = 256
    norm: Literal["none", "gn"] = "none"


@dataclass
class PredictorConfig:
    """The mask predictor: the axes of the paper's ablations.

    - ``kind``: ``class_agnostic`` (one mask for every class, the baseline),
      ``class_specific`` (a learned mask weight per class: the fully supervised oracle, or
      plain Mask R-CNN), ``transfer`` (mask weights predicted by T from detection weights).
    - ``transfer_input``: what T reads per class: the box classifier's weight row
      (``cls``), the four box-regression rows (``box``), both (``cls+box``), fixed Gaussian
      vectors (``randn``), or fixed rows of ``embedding_file`` (``embedding``, e.g. GloVe).
    - ``transfer_layers`` / ``transfer_activation`` / ``transfer_hidden``: T's structure.
    - ``stop_gradient``: T's loss does not reach the detection weights (the paper's default).
    - ``mlp``: add the class-agnostic MLP branch (an FC on the flattened 28x28 head
      output) to every class's FCN logits.
    """

    kind: Literal["class_agnostic", "class_specific", "transfer"] = "transfer"
    transfer_input: Literal["cls", "box", "cls+box", "randn", "embedding"] = "cls+box"
    embedding_file: str | None = None
    randn_dim: int = 1024
    transfer_layers: int = 2
    transfer_activation: Literal["none", "relu", "leaky_relu"] = "leaky_relu"
    transfer_hidden: int = 256
    stop_gradient: bool = True
    mlp: bool = False
    mlp_layers: int = 1
    mlp_hidden: int = 1024

    def check(self) -> None:
        if not 1 <= self.transfer_layers <= 3:
            raise ConfigError(f"transfer_layers: expected 1, 2 or 3, got {self.transfer_layers}")
        if not 1 <= self.mlp_layers <= 3:
            raise ConfigError(f"mlp_layers: expected 1, 2 or 3, got {self.mlp_layers}")
        if self.kind == "transfer" and self.transfer_input == "embedding" and not self.embedding_file:
            raise ConfigError("embedding_file: transfer_input 'embedding' needs an embedding file")
        if self.kind == "class_specific" and self.mlp:
            raise ConfigError("mlp: the MLP branch goes with class_agnostic or transfer predictors")

    def describe(self) -> str:
        """A short name for tables, e.g. ``transfer cls+box 2-layer leaky_relu +MLP``."""
        if self.kind == "transfer":
            text = (f"transfer {self.transfer_input} {self.transfer_layers}-layer "
                    f"{self.transfer_activation}")
            if not self.stop_gradient:
                text += " (no stop-grad)"
        else:
            text = self.kind.replace("_", "-")
        return text + (" +MLP" if self.mlp else "")


@dataclass
class ModelConfig:
    """Everything that defines a Mask^X R-CNN (checkpoints carry it)."""

    # Detector outputs, background included (a dataset's CategoryMap.num_classes).
    num_classes: int = 81
    # Shorter image side (one drawn per image in training when several are given) and the
    # longest side allowed, as torchvision's GeneralizedRCNNTransform takes them.
    min_size: tuple[int, ...] = (800,)
    max_size: int = 1333
    image_mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    image_std: tuple[float, ...] = (0.229, 0.224, 0.225)
    # RoIAlign's half-pixel shift in the FPN poolers (detectron2's ROIAlignV2); torchvision
    # pools without it.
    aligned: bool = False
    # maskx: the maskx_kernels ops on every hot path; torchvision: torchvision's ops and a
    # plain-PyTorch predictor (the reference the maskx path is checked against).
    ops: Literal["maskx", "torchvision"] = "maskx"
    # Run the backbone on channels-last tensors.
    channels_last: bool = False
    # False builds the detector alone (stage 1 of stage-wise training).
    mask_on: bool = True
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    rpn: RPNConfig = field(default_factory=RPNConfig)
    box: BoxHeadConfig = field(default_factory=BoxHeadConfig)
    mask: MaskHeadConfig = field(default_factory=MaskHeadConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)

    def check(self) -> None:
        if self.num_classes < 2:
            raise ConfigError(f"num_classes: expected at least 2 (background and one class), got {self.num_classes}")
        if not self.min_size or min(self.min_size) < 1 or self.max_size < max(self.min_size):
            raise ConfigError(f"min_size: expected positive sizes not above max_size, got {self.min_size} / {self.max_size}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ConfigError("image_mean / image_std: expected three values (RGB)")
