"""maskx_kernels: RoIAlign, NMS and Mask^X R-CNN kernels registered as torch.ops.maskx.*.

The functions and modules here keep torchvision's signatures, so a detector can swap
``torchvision.ops`` for ``maskx_kernels``.
"""
import maskx_kernels._C  # noqa: F401  (registers the native ops)
from maskx_kernels.ops.batched_nms import batched_nms
from maskx_kernels.ops.multi_scale_roi_align import MultiScaleRoIAlign, multi_scale_roi_align
from maskx_kernels.ops.multiclass_nms import multiclass_nms
from maskx_kernels.ops.nms import nms
from maskx_kernels.ops.roi_align import RoIAlign, roi_align

__all__ = [
    "MultiScaleRoIAlign",
    "RoIAlign",
    "batched_nms",
    "multi_scale_roi_align",
    "multiclass_nms",
    "nms",
    "roi_align",
]
