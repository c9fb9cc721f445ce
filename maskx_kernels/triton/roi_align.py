"""RoIAlign in Triton: the same sampling rule as torch.ops.maskx.roi_align
(csrc/ops/roi_align_common.h), written once for any GPU Triton targets and for the CPU
through the Triton interpreter (TRITON_INTERPRET=1).

One program pools a [bin rows, bin columns, channels] tile of one RoI: it walks the
grid_h x grid_w samples per bin (a runtime trip count when sampling_ratio <= 0), each
step gathering the tile's four bilinear taps through the input's strides, so any layout
(NCHW or channels-last) works without a copy. The backward pass mirrors it and scatters with atomic adds into a
float32 (float64 for float64) buffer, so on a GPU its last bits may vary between runs.
Under torch.use_deterministic_algorithms(True) it gathers instead: the program of one
(image, pixel row, column block, channel block) sums, in RoI index order, what the
image's RoIs send to its pixels, using separable row and column weights (RoIs are
grouped by image with a stable device-side sort, without host synchronisation).

roi_align_forward / roi_align_backward (the launchers) and roi_align (differentiable)
take the arguments of torch.ops.maskx.roi_align / _roi_align_backward: torchvision's,
with the RoIs as a [K, 5] tensor. roi_align runs the custom op
``torch.ops.maskx_triton.roi_align``, whose autograd calls ``_roi_align_backward``; they
are custom ops rather than torch.library.triton_op, which would let Inductor see the
kernels, because a traced triton_op launch does not run under the Triton interpreter.
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from maskx_kernels._validation import check, check_same_device
from maskx_kernels.ops.roi_align import check_roi_align_args, check_roi_values, check_rois
from maskx_kernels.triton._utils import accumulator_dtype, on_device, tl_accumulator_dtype


@triton.jit
def _roi_geometry(roi_ptr, batch, pooled_h, pooled_w, sampling_ratio, SPATIAL_SCALE: tl.constexpr,
                  ALIGNED: tl.constexpr, ACC: tl.constexpr):
    """roi_align_common.h's roi_geometry; a RoI with a batch index that is not an integer
    in [0, batch) or a non-finite coordinate gets an empty sample grid (pools to zero)."""
    index = tl.load(roi_ptr).to(ACC)
    x1 = tl.load(roi_ptr + 1).to(ACC)
    y1 = tl.load(roi_ptr + 2).to(ACC)
    x2 = tl.load(roi_ptr + 3).to(ACC)
    y2 = tl.load(roi_ptr + 4).to(ACC)
    finite = (tl.abs(x1) < float("inf")) & (tl.abs(y1) < float("inf"))
    finite = finite & (tl.abs(x2) < float("inf")) & (tl.abs(y2) < float("inf"))
    ok = finite & (index >= 0) & (index < batch) & (index == tl.floor(index))
    image = tl.where(ok, index, 0.0).to(tl.int64)
    if ALIGNED:
        start_w = x1 * SPATIAL_SCALE - 0.5
        start_h = y1 * SPATIAL_SCALE - 0.5
        roi_w = x2 * SPATIAL_SCALE - 0.5 - start_w
        roi_h = y2 * SPATIAL_SCALE - 0.5 - start_h
    else:
        # The legacy (non-aligned) RoIAlign forces malformed RoIs to be at least 1x1.
        start_w = x1 * SPATIAL_SCALE
        start_h = y1 * SPATIAL_SCALE
        roi_w = tl.maximum(x2 * SPATIAL_SCALE - start_w, 1.0)
        roi_h = tl.maximum(y2 * SPATIAL_SCALE - start_h, 1.0)
    bin_h = roi_h / pooled_h
    bin_w = roi_w / pooled_w
    grid_h = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(tl.where(ok, bin_h, 0.0)).to(tl.int32))
    grid_w = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(tl.where(ok, bin_w, 0.0)).to(tl.int32))
    grid_h = tl.where(ok, grid_h, 0)
    grid_w = tl.where(ok, grid_w, 0)
    inv_count = 1.0 / tl.maximum(grid_h * grid_w, 1).to(ACC)
    return image, start_h, start_w, bin_h, bin_w, grid_h, grid_w, inv_count


@triton.jit
def _axis_taps(coord, size, ACC: tl.constexpr):
    """roi_align_common.h's axis_taps: (valid, low, high, w_low, w_high)."""
    valid = (coord >= -1.0) & (coord <= size)
    # Clamping to [0, size] leaves valid samples as they are and keeps the int cast safe.
    coord = tl.minimum(tl.maximum(coord, 0.0), size)
    low = coord.to(tl.int64)
    at_edge = low >= size - 1
    low = tl.where(at_edge, size - 1, low)
    high = tl.where(at_edge, low, low + 1)
    coord = tl.where(at_edge, low.to(ACC), coord)
    w_high = coord - low.to(ACC)
    return valid, low, high, 1.0 - w_high, w_high


@triton.jit
def _bin_taps(start, bin_size, p, i, grid, size, ACC: tl.constexpr):
    """Taps of sample i of the bins p (a vector) along one axis."""
    return _axis_taps(start + p * bin_size + (i + 0.5) * bin_size / grid.to(ACC), size, ACC)


@triton.jit
def _roi_align_forward_kernel(
    input_ptr, rois_ptr, output_ptr,
    batch, channels, height, width,
    stride_n, stride_c, stride_h, stride_w,
    pooled_h, pooled_w, sampling_ratio,
    SPATIAL_SCALE: tl.constexpr, ALIGNED: tl.constexpr, ACC: tl.constexpr,
    BLOCK_PH: tl.constexpr, BLOCK_PW: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Pools bin rows [BLOCK_PH * pid1, + BLOCK_PH) of RoI pid0, all bin columns, for
    channels [BLOCK_C * pid2, + BLOCK_C): one [BLOCK_PH, BLOCK_PW, BLOCK_C] tile."""
    k = tl.program_id(0).to(tl.int64)
    ph = tl.program_id(1) * BLOCK_PH + tl.arange(0, BLOCK_PH)
    pw = tl.arange(0, BLOCK_PW)
    c = (tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C))[None, None, :]
    tile = (ph[:, None, None] < pooled_h) & (pw[None, :, None] < pooled_w) & (c < channels)
    image, start_h, start_w, bin_h, bin_w, grid_h, grid_w, inv_count = _roi_geometry(
        rois_ptr + k * 5, batch, pooled_h, pooled_w, sampling_ratio, SPATIAL_SCALE, ALIGNED, ACC
    )
    base = input_ptr + image * stride_n + c.to(tl.int64) * stride_c
    acc = tl.zeros([BLOCK_PH, BLOCK_PW, BLOCK_C], dtype=ACC)
    for iy in range(0, grid_h):
        y_ok, y_low, y_high, wy_low, wy_high = _bin_taps(start_h, bin_h, ph, iy, grid_h, height, ACC)
        row_low = base + (y_low * stride_h)[:, None, None]
        row_high = base + (y_high * stride_h)[:, None, None]
        wy_low = wy_low[:, None, None]
        wy_high = wy_high[:, None, None]
        for ix in range(0, grid_w):
            x_ok, x_low, x_high, wx_low, wx_high = _bin_taps(start_w, bin_w, pw, ix, grid_w, width, ACC)
            mask = tile & y_ok[:, None, None] & x_ok[None, :, None]
            col_low = (x_low * stride_w)[None, :, None]
            col_high = (x_high * stride_w)[None, :, None]
            v_ll = tl.load(row_low + col_low, mask=mask, other=0.0).to(ACC)
            v_lh = tl.load(row_low + col_high, mask=mask, other=0.0).to(ACC)
            v_hl = tl.load(row_high + col_low, mask=mask, other=0.0).to(ACC)
            v_hh = tl.load(row_high + col_high, mask=mask, other=0.0).to(ACC)
            wx_low = wx_low[None, :, None]
            wx_high = wx_high[None, :, None]
            acc += wy_low * (wx_low * v_ll + wx_high * v_lh) + wy_high * (wx_low * v_hl + wx_high * v_hh)
    out = output_ptr + ((k * channels + c) * pooled_h + ph[:, None, None]) * pooled_w + pw[None, :, None]
    tl.store(out, (acc * inv_count).to(output_ptr.dtype.element_ty), mask=tile)


@triton.jit
def _roi_align_backward_kernel(
    grad_ptr, rois_ptr, grad_input_ptr,
    batch, channels, height, width,
    pooled_h, pooled_w, sampling_ratio,
    SPATIAL_SCALE: tl.constexpr, ALIGNED: tl.constexpr, ACC: tl.constexpr,
    BLOCK_PH: tl.constexpr, BLOCK_PW: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Scatters the forward kernel's tile of the gradient into a contiguous
    [N, C, H, W] buffer of dtype ACC."""
    k = tl.program_id(0).to(tl.int64)
    ph = tl.program_id(1) * BLOCK_PH + tl.arange(0, BLOCK_PH)
    pw = tl.arange(0, BLOCK_PW)
    c = (tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C))[None, None, :]
    tile = (ph[:, None, None] < pooled_h) & (pw[None, :, None] < pooled_w) & (c < channels)
    image, start_h, start_w, bin_h, bin_w, grid_h, grid_w, inv_count = _roi_geometry(
        rois_ptr + k * 5, batch, pooled_h, pooled_w, sampling_ratio, SPATIAL_SCALE, ALIGNED, ACC
    )
    grad_tile = grad_ptr + ((k * channels + c) * pooled_h + ph[:, None, None]) * pooled_w + pw[None, :, None]
    g = tl.load(grad_tile, mask=tile, other=0.0).to(ACC) * inv_count
    base = grad_input_ptr + (image * channels + c.to(tl.int64)) * height * width
    for iy in range(0, grid_h):
        y_ok, y_low, y_high, wy_low, wy_high = _bin_taps(start_h, bin_h, ph, iy, grid_h, height, ACC)
        row_low = base + (y_low * width)[:, None, None]
        row_high = base + (y_high * width)[:, None, None]
        g_low = g * wy_low[:, None, None]
        g_high = g * wy_high[:, None, None]
        for ix in range(0, grid_w):
            x_ok, x_low, x_high, wx_low, wx_high = _bin_taps(start_w, bin_w, pw, ix, grid_w, width, ACC)
            mask = tile & y_ok[:, None, None] & x_ok[None, :, None]
            col_low = x_low[None, :, None]
            col_high = x_high[None, :, None]
            wx_low = wx_low[None, :, None]
            wx_high = wx_high[None, :, None]
            tl.atomic_add(row_low + col_low, g_low * wx_low, mask=mask)
            tl.atomic_add(row_low + col_high, g_low * wx_high, mask=mask)
            tl.atomic_add(row_high + col_low, g_high * wx_low, mask=mask)
            tl.atomic_add(row_high + col_high, g_high * wx_high, mask=mask)


@triton.jit
def _axis_weight(start, bin_size, p, grid, size, index, ACC: tl.constexpr):
    """roi_align_common.h's axis_weight for a pixel index or a vector of them."""
    weight = tl.zeros_like(index).to(ACC)
    for i in range(0, grid):
        valid, low, high, w_low, w_high = _bin_taps(start, bin_size, p, i, grid, size, ACC)
        weight += tl.where(low == index, tl.where(valid, w_low, 0.0), 0.0)
        weight += tl.where(high == index, tl.where(valid, w_high, 0.0), 0.0)
    return weight


@triton.jit
def _span_reaches(start, bin_size, bins, first, last):
    """Whether samples of bins [0, bins) can have a tap on a pixel in [first, last]:
    samples lie in the bins' span up to rounding and taps are within one pixel of them."""
    end = start + bins * bin_size
    return (last + 2.0 >= tl.minimum(start, end)) & (first - 2.0 <= tl.maximum(start, end))


@triton.jit
def _roi_align_backward_gather_kernel(
    grad_ptr, rois_ptr, order_ptr, offsets_ptr, grad_input_ptr,
    batch, channels, height, width,
    pooled_h, pooled_w, sampling_ratio,
    SPATIAL_SCALE: tl.constexpr, ALIGNED: tl.constexpr, ACC: tl.constexpr,
    BLOCK_X: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Deterministic backward: the program of (image n, row y) and blocks of columns and
    channels sums, in RoI index order, what the image's RoIs (order[offsets[n],
    offsets[n + 1])) send to its pixels, with separable row and column weights."""
    n = tl.program_id(0) // height
    y = tl.program_id(0) % height
    x0 = tl.program_id(1) * BLOCK_X
    x = x0 + tl.arange(0, BLOCK_X)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < channels
    acc = tl.zeros([BLOCK_X, BLOCK_C], dtype=ACC)
    for r in range(tl.load(offsets_ptr + n), tl.load(offsets_ptr + n + 1)):
        k = tl.load(order_ptr + r)
        image, start_h, start_w, bin_h, bin_w, grid_h, grid_w, inv_count = _roi_geometry(
            rois_ptr + k * 5, batch, pooled_h, pooled_w, sampling_ratio, SPATIAL_SCALE, ALIGNED, ACC
        )
        near = _span_reaches(start_h, bin_h, pooled_h, y, y) & _span_reaches(start_w, bin_w, pooled_w, x0,
                                                                              x0 + BLOCK_X - 1)
        if near:
            grad_k = grad_ptr + (k * channels + c) * pooled_h * pooled_w
            for ph in range(0, pooled_h):
                wy = _axis_weight(start_h, bin_h, ph, grid_h, height, y, ACC) * inv_count
                if wy != 0.0:
                    for pw in range(0, pooled_w):
                        wx = _axis_weight(start_w, bin_w, pw, grid_w, width, x, ACC)
                        g = tl.load(grad_k + ph * pooled_w + pw, mask=c_mask, other=0.0).to(ACC)
                        acc += (wy * wx)[:, None] * g[None, :]
    out = grad_input_ptr + ((n * channels + c[None, :]).to(tl.int64) * height + y) * width + x[:, None]
    tl.store(out, acc.to(grad_input_ptr.dtype.element_ty), mask=(x[:, None] < width) & c_mask[None, :])


# Output elements per program.
_TILE = 1024


def _launch_tiles(kernel, tensors, sizes, pooled_h, pooled_w, spatial_scale, aligned, dtype, num_rois, channels):
    """Launches a kernel over tiles of [BLOCK_PH, BLOCK_PW, BLOCK_C] outputs: every bin
    column of a RoI at once and up to _TILE elements per program."""
    block_pw = triton.next_power_of_2(pooled_w)
    block_c = min(triton.next_power_of_2(channels), max(_TILE // block_pw, 1))
    block_ph = min(triton.next_power_of_2(pooled_h), max(_TILE // (block_pw * block_c), 1))
    grid = (num_rois, triton.cdiv(pooled_h, block_ph), triton.cdiv(channels, block_c))
    kernel[grid](
        *tensors, *sizes,
        SPATIAL_SCALE=float(spatial_scale), ALIGNED=bool(aligned), ACC=tl_accumulator_dtype(dtype),
        BLOCK_PH=block_ph, BLOCK_PW=block_pw, BLOCK_C=block_c,
    )


def _backward_gather(grad, rois, spatial_scale, pooled_h, pooled_w, batch, channels, height, width,
                     sampling_ratio, aligned):
    grad_input = grad.new_empty((batch, channels, height, width))
    if grad_input.numel() == 0:
        return grad_input
    # Group the RoIs by image with a stable sort on the device; invalid RoIs go last.
    index = rois[:, 0]
    valid = (index == index.floor()) & (index >= 0) & (index < batch) & torch.isfinite(rois[:, 1:]).all(dim=1)
    key = torch.where(valid, index.to(torch.int64), batch)
    sorted_keys, order = torch.sort(key, stable=True)
    offsets = torch.searchsorted(sorted_keys, torch.arange(batch + 1, device=key.device))
    block_x = min(triton.next_power_of_2(width), 64)
    block_c = min(triton.next_power_of_2(channels), max(_TILE // block_x, 1))
    grid = (batch * height, triton.cdiv(width, block_x), triton.cdiv(channels, block_c))
    _roi_align_backward_gather_kernel[grid](
        grad.contiguous(), rois.contiguous(), order, offsets, grad_input,
        batch, channels, height, width, pooled_h, pooled_w, sampling_ratio,
        SPATIAL_SCALE=float(spatial_scale), ALIGNED=bool(aligned), ACC=tl_accumulator_dtype(grad.dtype),
        BLOCK_X=block_x, BLOCK_C=block_c,
    )
    return grad_input


def _launch_forward(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned):
    """The forward kernel on arguments the caller has checked."""
    batch, channels, height, width = input.shape
    rois = rois.contiguous()
    output = input.new_empty((rois.shape[0], channels, pooled_h, pooled_w))
    if output.numel() == 0 or height == 0 or width == 0:
        return output.zero_()
    with on_device(input):
        _launch_tiles(
            _roi_align_forward_kernel,
            (input, rois, output),
            (batch, channels, height, width, *input.stride(), pooled_h, pooled_w, sampling_ratio),
            pooled_h, pooled_w, spatial_scale, aligned, input.dtype, rois.shape[0], channels,
        )
    return output


def _launch_backward(grad, rois, spatial_scale, pooled_h, pooled_w, batch, channels, height, width, sampling_ratio,
                     aligned):
    """The backward kernels on arguments the caller has checked."""
    with on_device(grad):
        if torch.are_deterministic_algorithms_enabled():
            return _backward_gather(grad, rois, spatial_scale, pooled_h, pooled_w, batch, channels, height, width,
                                    sampling_ratio, aligned)
        grad_input = grad.new_zeros((batch, channels, height, width), dtype=accumulator_dtype(grad.dtype))
        if grad.numel() == 0 or grad_input.numel() == 0:
            return grad_input.to(grad.dtype)
        _launch_tiles(
            _roi_align_backward_kernel,
            (grad.contiguous(), rois.contiguous(), grad_input),
            (batch, channels, height, width, pooled_h, pooled_w, sampling_ratio),
            pooled_h, pooled_w, spatial_scale, aligned, grad.dtype, rois.shape[0], channels,
        )
        return grad_input.to(grad.dtype)


def _check_values(rois: Tensor, batch: int) -> None:
    # The kernels pool invalid RoIs to zero; eager calls get an error instead.
    if not torch.compiler.is_compiling():
        check_roi_values("roi_align", rois, batch)


def _check_backward_args(grad, rois, pooled_h, pooled_w, batch, channels):
    check_rois("roi_align backward", rois, "grad", grad)
    check_same_device("roi_align backward", grad=grad, rois=rois)
    expected = (rois.shape[0], channels, pooled_h, pooled_w)
    check(
        tuple(grad.shape) == expected,
        lambda: f"roi_align backward: grad has shape {tuple(grad.shape)}, expected {expected}",
    )
    _check_values(rois, batch)


@torch.library.custom_op("maskx_triton::roi_align", mutates_args=())
def _roi_align_op(
    input: Tensor, rois: Tensor, spatial_scale: float, pooled_h: int, pooled_w: int, sampling_ratio: int, aligned: bool
) -> Tensor:
    return _launch_forward(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)


@torch.library.custom_op("maskx_triton::_roi_align_backward", mutates_args=())
def _roi_align_backward_op(
    grad: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_h: int,
    pooled_w: int,
    batch: int,
    channels: int,
    height: int,
    width: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    return _launch_backward(grad, rois, spatial_scale, pooled_h, pooled_w, batch, channels, height, width,
                            sampling_ratio, aligned)


@_roi_align_op.register_fake
def _roi_align_fake(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned):
    return input.new_empty((rois.shape[0], input.shape[1], pooled_h, pooled_w))


@_roi_align_backward_op.register_fake
def _roi_align_backward_fake(grad, rois, spatial_scale, pooled_h, pooled_w, batch, channels, height, width,
                             sampling_ratio, aligned):
    return grad.new_empty((batch, channels, height, width))


def _setup_context(ctx, inputs, output):
    input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    ctx.args = (spatial_scale, pooled_h, pooled_w)
    ctx.options = (sampling_ratio, aligned)
    ctx.input_shape = tuple(input.shape)


def _backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    # The forward pass has checked the RoIs.
    grad_input = torch.ops.maskx_triton._roi_align_backward(grad, rois, *ctx.args, *ctx.input_shape, *ctx.options)
    return grad_input, None, None, None, None, None, None


torch.library.register_autograd("maskx_triton::roi_align", _backward, setup_context=_setup_context)


def roi_align_forward(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_h: int,
    pooled_w: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """The forward launcher: :func:`roi_align`'s result, not differentiable."""
    check_roi_align_args(input, rois, spatial_scale, pooled_h, pooled_w)
    _check_values(rois, input.shape[0])
    return _launch_forward(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)


def roi_align_backward(
    grad: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_h: int,
    pooled_w: int,
    batch: int,
    channels: int,
    height: int,
    width: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """The backward launcher: the gradient of :func:`roi_align` with respect to its
    input, Tensor[N, C, H, W] (the arguments of torch.ops.maskx._roi_align_backward)."""
    _check_backward_args(grad, rois, pooled_h, pooled_w, batch, channels)
    return _launch_backward(grad, rois, spatial_scale, pooled_h, pooled_w, batch, channels, height, width,
                            sampling_ratio, aligned)


def roi_align(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    pooled_h: int,
    pooled_w: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """RoIAlign of ``rois`` (Tensor[K, 5] of batch index, x1, y1, x2, y2) from ``input``
    (Tensor[N, C, H, W], any strides): Tensor[K, C, pooled_h, pooled_w], differentiable
    with respect to ``input``."""
    check_roi_align_args(input, rois, spatial_scale, pooled_h, pooled_w)
    _check_values(rois, input.shape[0])
    return torch.ops.maskx_triton.roi_align(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)
