"""Random RoIAlign inputs shared by the RoIAlign test files."""
import torch


def random_rois(num, batch, height, width, spatial_scale, dtype=torch.float64, generator=None, outside=True):
    """[num, 5] rois in image coordinates for a feature map of height x width.

    Mixes tiny, ordinary and huge boxes; with ``outside`` some lie partly or wholly
    outside the image, and some are degenerate (x2 < x1).
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    img_h, img_w = height / spatial_scale, width / spatial_scale
    lo = torch.rand(num, 2, generator=g, dtype=torch.float64) * torch.tensor([img_w, img_h], dtype=torch.float64)
    kind = torch.randint(0, 4, (num, 1), generator=g)
    scale = torch.tensor([0.05, 0.3, 1.0, 2.5], dtype=torch.float64)[kind]
    size = torch.rand(num, 2, generator=g, dtype=torch.float64) * scale * torch.tensor([img_w, img_h], dtype=torch.float64)
    if outside:
        lo = lo * 1.4 - 0.2 * torch.tensor([img_w, img_h], dtype=torch.float64)
        flip = torch.rand(num, generator=g) < 0.05
        size[flip] = -size[flip] * 0.1
    boxes = torch.cat([lo, lo + size], dim=1)
    index = torch.randint(0, batch, (num, 1), generator=g).to(torch.float64)
    return torch.cat([index, boxes], dim=1).to(dtype)


def random_features(batch, channels, height, width, dtype=torch.float64, layout="nchw", generator=None):
    """Random features in a given memory layout: "nchw", "channels_last" or "strided"
    (a non-contiguous view)."""
    g = generator if generator is not None else torch.Generator().manual_seed(1)
    if layout == "strided":
        base = torch.randn(batch, channels * 2, height + 3, width * 2, generator=g, dtype=torch.float64)
        return base[:, ::2, 1 : height + 1, ::2].to(dtype)
    x = torch.randn(batch, channels, height, width, generator=g, dtype=torch.float64).to(dtype)
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    return x
