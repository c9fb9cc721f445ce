"""maskx_kernels.paste_masks: Mask R-CNN's last inference step, the [N, M, M] mask
probabilities pasted into the image at their boxes, with torchvision's
paste_masks_in_image's pixels; and paste_masks_rle, COCO's compressed RLE of every
thresholded mask straight from the kernel, without the N x H x W masks.

torchvision resizes every mask to its box with F.interpolate and copies it into a zeroed
float32 image (100 masks of 800x1333 are 427 MB). Here one call computes only each box's
pixels (and zeroes the rest), thresholded to bool unless asked for probabilities.
Native kernels: csrc/ops/cpu/paste_masks_kernel.cpp and csrc/ops/cuda/paste_masks_kernel.cu,
registered as torch.ops.maskx.paste_masks / paste_masks_rle (schema in
csrc/ops/paste_masks.cpp, per-pixel math in csrc/ops/paste_masks_common.h).
Not differentiable (an inference step).
"""
from collections.abc import Sequence

import torch
from torch import Tensor

from maskx_kernels._validation import check, check_float, check_same_device, should_check_values

MAX_COORDINATE = 2.0**30
MAX_PADDING = 65536


def check_paste_args(
    op: str, masks: Tensor, boxes: Tensor, height: int, width: int, padding: int, threshold: float | None
) -> None:
    check(masks.dim() == 3, lambda: f"{op}: masks must be a Tensor[N, M, M], got shape {list(masks.shape)}")
    check_float(op, "masks", masks)
    check(
        masks.shape[1] > 0 and masks.shape[2] > 0,
        lambda: f"{op}: masks must have a positive size, got shape {list(masks.shape)}",
    )
    check(
        boxes.dim() == 2 and boxes.shape[1] == 4 and boxes.shape[0] == masks.shape[0],
        lambda: f"{op}: boxes must be a Tensor[N, 4] with N = {masks.shape[0]} (one box per mask), "
        f"got shape {list(boxes.shape)}",
    )
    check(
        boxes.dtype in (torch.float32, torch.float64),
        lambda: f"{op}: boxes must be float32 or float64, got {boxes.dtype}",
    )
    check_same_device(op, masks=masks, boxes=boxes)
    check(height >= 0 and width >= 0, lambda: f"{op}: image size must be non-negative, got ({height}, {width})")
    check(
        0 <= padding <= MAX_PADDING,
        lambda: f"{op}: padding must be in [0, {MAX_PADDING}], got {padding}",
    )
    if threshold is not None:
        check(
            threshold == threshold and abs(threshold) != float("inf"),
            lambda: f"{op}: threshold must be finite, got {threshold}",
        )


def check_box_values(op: str, boxes: Tensor, always: bool = False) -> None:
    """Finite coordinates within +-2^30. The native CPU kernels check the same themselves,
    so by default only boxes on other devices are read (eagerly, never while tracing);
    `always` reads CPU boxes too (for kernels that do not check)."""
    if boxes.numel() == 0:
        return
    if not (should_check_values(boxes) or (always and not torch.compiler.is_compiling())):
        return
    bad = ~(torch.isfinite(boxes) & (boxes.abs() <= MAX_COORDINATE)).all(dim=1)
    if bool(bad.any()):
        n = int(bad.nonzero()[0, 0])
        raise ValueError(f"{op}: box {n} = {boxes[n].tolist()} needs finite coordinates within +-2^30")


def _check_on_device(op: str, masks: Tensor, boxes: Tensor, height: int, width: int, padding: int, threshold) -> None:
    """The box values of a call on a GPU, read on the device, so the arguments are checked
    first; on the CPU the native op checks both."""
    if should_check_values(masks, boxes):
        check_paste_args(op, masks, boxes, height, width, padding, threshold)
        check_box_values(op, boxes)


def _image_size(op: str, image_size: Sequence[int]) -> tuple[int, int]:
    check(
        len(image_size) == 2,
        lambda: f"{op}: image_size must be (height, width), got {image_size!r}",
    )
    return image_size[0], image_size[1]


def _as_3d(op: str, masks: Tensor) -> tuple[Tensor, bool]:
    """[N, 1, M_h, M_w] (torchvision's mask shape) as [N, M_h, M_w]."""
    if masks.dim() == 4:
        check(
            masks.shape[1] == 1,
            lambda: f"{op}: masks must be a Tensor[N, M, M] or Tensor[N, 1, M, M], got shape {list(masks.shape)}",
        )
        return masks[:, 0], True
    return masks, False


@torch.library.register_fake("maskx::paste_masks")
def _paste_masks_fake(masks, boxes, height, width, padding=1, threshold=None):
    check_paste_args("paste_masks", masks, boxes, height, width, padding, threshold)
    dtype = torch.bool if threshold is not None else masks.dtype
    return masks.new_empty((masks.shape[0], height, width), dtype=dtype)


@torch.library.register_fake("maskx::paste_masks_rle")
def _paste_masks_rle_fake(masks, boxes, height, width, padding=1, threshold=0.5):
    check_paste_args("paste_masks_rle", masks, boxes, height, width, padding, threshold)
    chars = torch.library.get_ctx().new_dynamic_size()
    return (
        torch.empty((chars,), dtype=torch.uint8, device="cpu"),
        torch.empty((masks.shape[0] + 1,), dtype=torch.int64, device="cpu"),
    )


def paste_masks(
    masks: Tensor,
    boxes: Tensor,
    image_size: Sequence[int],
    threshold: float | None = 0.5,
    padding: int = 1,
) -> Tensor:
    """Pastes mask probabilities into image-sized masks, as torchvision's
    ``paste_masks_in_image`` does (the same pixels).

    Each mask is padded by ``padding`` zeros, its box is scaled about its centre by
    (M + 2 padding) / M and truncated to whole pixels, and the padded mask is resized
    bilinearly to that box; the box's pixels inside the image get its values, all other
    pixels 0. Boxes partly or wholly outside the image keep only their pixels inside it
    (torchvision raises for boxes wholly above, left of, right of or below the image).
    float32 and float64 masks get torchvision's values bit for bit on x86 CPUs with FMA
    and on CUDA; float16 and bfloat16 are computed in float32.

    Args:
        masks: Tensor[N, M_h, M_w] (or Tensor[N, 1, M_h, M_w], torchvision's shape) of
            mask probabilities, float32/64, float16 or bfloat16.
        boxes: Tensor[N, 4] of (x1, y1, x2, y2) in image pixels, float32 or float64, on
            the masks' device, finite and within +-2^30.
        image_size: (height, width) of the image.
        threshold: a pixel is True when its value is above it (compared in the masks'
            dtype, as ``probabilities > threshold`` is); ``None`` returns the
            probabilities in the masks' dtype instead (torchvision's output).
        padding: zeros around each mask before resizing (torchvision's default 1).

    Returns:
        Tensor[N, height, width] (Tensor[N, 1, height, width] for 4-d masks), bool, or
        the masks' dtype when ``threshold`` is None.
    """
    op = "paste_masks"
    masks3, four_d = _as_3d(op, masks)
    height, width = _image_size(op, image_size)
    _check_on_device(op, masks3, boxes, height, width, padding, threshold)
    out = torch.ops.maskx.paste_masks(masks3, boxes, height, width, padding, threshold)
    return out[:, None] if four_d else out


def paste_masks_rle(
    masks: Tensor,
    boxes: Tensor,
    image_size: Sequence[int],
    threshold: float = 0.5,
    padding: int = 1,
) -> list[dict[str, object]]:
    """COCO compressed RLE of every pasted, thresholded mask, without the image-sized masks.

    ``paste_masks_rle(masks, boxes, size, t)[i]`` equals
    ``pycocotools.mask.encode(np.asfortranarray(paste_masks(masks, boxes, size, t)[i].numpy().astype(np.uint8)))``:
    a dict with "size" [height, width] and "counts" (bytes), as in COCO results files.
    Only each box's pixels are computed; a CUDA call copies the thresholded boxes to the
    host and encodes them there.

    Args:
        masks, boxes, image_size, padding: as in :func:`paste_masks`.
        threshold: pixels above it are in the mask.

    Returns:
        A list of N dicts {"size": [height, width], "counts": bytes}.
    """
    op = "paste_masks_rle"
    masks3, _ = _as_3d(op, masks)
    height, width = _image_size(op, image_size)
    _check_on_device(op, masks3, boxes, height, width, padding, threshold)
    chars, offsets = torch.ops.maskx.paste_masks_rle(masks3, boxes, height, width, padding, float(threshold))
    data = chars.numpy().tobytes()
    bounds = offsets.tolist()
    size = [int(height), int(width)]
    return [{"size": list(size), "counts": data[bounds[i] : bounds[i + 1]]} for i in range(len(bounds) - 1)]
