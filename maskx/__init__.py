"""maskx: partially supervised instance segmentation (Mask^X R-CNN) on PyTorch."""

__version__ = "0.1.0"
