"""maskx_kernels: RoIAlign, NMS and Mask^X R-CNN kernels registered as torch.ops.maskx.*.

The functions and modules here keep torchvision's signatures, so a detector can swap
``torchvision.ops`` for ``maskx_kernels``.
"""
import torch  # noqa: F401  (loads libtorch, which the extension links against)

import maskx_kernels._C  # noqa: F401  (registers the native ops)
from maskx_kernels.cpu_cache import cpu_cache_bytes, cpu_cache_limit, empty_cpu_cache, set_cpu_cache_limit
from maskx_kernels.ops.batched_nms import batched_nms
from maskx_kernels.ops.detection_embedding import detection_embedding
from maskx_kernels.ops.multi_scale_roi_align import MultiScaleRoIAlign, multi_scale_roi_align
from maskx_kernels.ops.multiclass_nms import multiclass_nms
from maskx_kernels.ops.nms import nms
from maskx_kernels.ops.paste_masks import paste_masks, paste_masks_rle
from maskx_kernels.ops.per_class_mask_logits import per_class_mask_logits
from maskx_kernels.ops.per_class_mask_loss import per_class_mask_loss
from maskx_kernels.ops.roi_align import RoIAlign, roi_align
from maskx_kernels.ops.transfer_mlp import transfer_mlp

__all__ = [
    "MultiScaleRoIAlign",
    "RoIAlign",
    "batched_nms",
    "cpu_cache_bytes",
    "cpu_cache_limit",
    "detection_embedding",
    "empty_cpu_cache",
    "multi_scale_roi_align",
    "multiclass_nms",
    "nms",
    "paste_masks",
    "paste_masks_rle",
    "per_class_mask_logits",
    "per_class_mask_loss",
    "roi_align",
    "set_cpu_cache_limit",
    "transfer_mlp",
]
