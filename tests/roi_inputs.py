"""Random RoIAlign inputs, and their CUDA copies, shared by the RoIAlign test files."""
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


def uniform_rois(num, batch, height, width, spatial_scale, generator):
    """[num, 5] float64 rois whose corners are uniform over the image and a margin of a
    quarter of it on every side: some reach past the map on any side."""
    img_h, img_w = height / spatial_scale, width / spatial_scale
    x = (torch.rand(num, 2, generator=generator, dtype=torch.float64) * 1.5 - 0.25) * img_w
    y = (torch.rand(num, 2, generator=generator, dtype=torch.float64) * 1.5 - 0.25) * img_h
    index = torch.randint(0, batch, (num, 1), generator=generator).to(torch.float64)
    x, y = x.sort(dim=1).values, y.sort(dim=1).values
    return torch.cat([index, x[:, :1], y[:, :1], x[:, 1:], y[:, 1:]], dim=1)


def cuda_copy(x, layout="nchw"):
    """x on the CUDA device, stored contiguously ("nchw"), channels-last or as a strided
    view ("strided")."""
    if layout == "channels_last":
        return x.cuda().contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        n, c, h, w = x.shape
        view = torch.empty(n, 2 * c, h, 3 * w, dtype=x.dtype, device="cuda")[:, ::2, :, ::3]
        view.copy_(x)
        return view
    return x.cuda()
