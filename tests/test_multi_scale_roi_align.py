"""maskx_kernels.MultiScaleRoIAlign and multi_scale_roi_align: on the CPU against
torchvision and the reference, then the CUDA kernels against the CPU ones, atomic and
deterministic."""
from collections import OrderedDict

import pytest
import torch
import torchvision

import maskx_kernels as mk
from maskx_kernels.ops.multi_scale_roi_align import fpn_levels
from maskx_kernels.reference import roi_align as ref
from roi_inputs import cuda_copy, random_rois, uniform_rois

NAMES = ["p2", "p3", "p4", "p5"]


def pyramid(batch, channels, image_size, strides=(4, 8, 16, 32), dtype=torch.float64, seed=0, channels_last=False):
    g = torch.Generator().manual_seed(seed)
    feats = OrderedDict()
    for name, s in zip(NAMES, strides):
        f = torch.randn(batch, channels, -(-image_size[0] // s), -(-image_size[1] // s), generator=g, dtype=torch.float64)
        feats[name] = f.to(dtype).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return feats


def box_lists(counts, image_shapes, seed):
    """Boxes of every size class (so all levels get RoIs), clipped to each image."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, (h, w) in zip(counts, image_shapes):
        side = torch.exp(torch.empty(n, 2, dtype=torch.float64).uniform_(2.0, 6.5, generator=g))
        centre = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([w, h], dtype=torch.float64)
        lo = (centre - side / 2).clamp(min=0)
        hi = torch.minimum(centre + side / 2, torch.tensor([w, h], dtype=torch.float64))
        out.append(torch.cat([lo, hi], dim=1))
    return out


@pytest.mark.parametrize("output_size", [7, (14, 14), (5, 3)])
@pytest.mark.parametrize("sampling_ratio", [2, 0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_torchvision(output_size, sampling_ratio, dtype, channels_last):
    image_shapes = [(120, 150), (97, 161)]
    x = pyramid(2, 9, (128, 164), dtype=dtype, seed=sampling_ratio, channels_last=channels_last)
    boxes = [b.to(dtype) for b in box_lists([40, 33], image_shapes, seed=3)]
    # A small canonical scale spreads these small images' boxes over all four levels.
    ours = mk.MultiScaleRoIAlign(NAMES, output_size, sampling_ratio, canonical_scale=56)(x, boxes, image_shapes)
    theirs = torchvision.ops.MultiScaleRoIAlign(NAMES, output_size, sampling_ratio, canonical_scale=56)(
        x, boxes, image_shapes
    )
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours, theirs, **tol)
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=dtype), b], 1) for i, b in enumerate(boxes)])
    levels = fpn_levels(rois[:, 1:], 2, 5, 56, 4)
    assert len(levels.unique()) == 4, "the boxes must spread over the levels"


@pytest.mark.parametrize("aligned", [False, True])
def test_aligned_flag_matches_torchvision_roi_align_per_level(aligned):
    image_shapes = [(120, 150), (97, 161)]
    x = pyramid(2, 6, (128, 164), seed=5)
    boxes = box_lists([30, 25], image_shapes, seed=8)
    pooler = mk.MultiScaleRoIAlign(NAMES, 7, 2, canonical_scale=56, aligned=aligned)
    assert f"aligned={aligned}" in repr(pooler)
    ours = pooler(x, boxes, image_shapes)
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype), b], 1) for i, b in enumerate(boxes)])
    levels = fpn_levels(rois[:, 1:], 2, 5, 56, 4)
    expected = torch.empty_like(ours)
    for level, (name, scale) in enumerate(zip(NAMES, (1 / 4, 1 / 8, 1 / 16, 1 / 32))):
        at = levels == level
        expected[at] = torchvision.ops.roi_align(x[name], rois[at], 7, scale, 2, aligned)
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-10)
    assert len(levels.unique()) == 4


def test_gradients_keep_the_input_layout():
    image_shapes = [(128, 164), (120, 150)]
    x = pyramid(2, 20, (128, 164), seed=12, channels_last=True)
    for f in x.values():
        f.requires_grad_()
    boxes = box_lists([150, 90], image_shapes, seed=13)
    out = mk.MultiScaleRoIAlign(NAMES, 5, 2)(x, boxes, image_shapes)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, list(x.values()), grad_out)
    nchw = {k: f.contiguous() for k, f in x.items()}
    nchw_grads = torch.autograd.grad(mk.MultiScaleRoIAlign(NAMES, 5, 2)(nchw, boxes, image_shapes), list(x.values()), grad_out)
    for grad, nchw_grad in zip(grads, nchw_grads):
        assert grad.is_contiguous(memory_format=torch.channels_last) and nchw_grad.is_contiguous()
        torch.testing.assert_close(grad, nchw_grad, rtol=1e-12, atol=1e-12)


def test_levels_match_torchvision_level_mapper():
    from torchvision.ops.poolers import LevelMapper

    boxes = box_lists([500], [(800, 1088)], seed=1)[0]
    for k_min, k_max in [(2, 5), (3, 6), (2, 2)]:
        expected = LevelMapper(k_min, k_max)([boxes])
        assert torch.equal(fpn_levels(boxes, k_min, k_max, 224, 4), expected)


def test_single_level_and_canonical_options():
    image_shapes = [(64, 64)]
    x = pyramid(1, 4, (64, 64), seed=4)
    boxes = box_lists([12], image_shapes, seed=5)
    for names in (["p3"], ["p2", "p3", "p4"]):
        ours = mk.MultiScaleRoIAlign(names, 4, 2, canonical_scale=112, canonical_level=3)(x, boxes, image_shapes)
        theirs = torchvision.ops.MultiScaleRoIAlign(names, 4, 2, canonical_scale=112, canonical_level=3)(
            x, boxes, image_shapes
        )
        torch.testing.assert_close(ours, theirs)


def test_functional_matches_reference_with_explicit_levels():
    g = torch.Generator().manual_seed(6)
    feats = list(pyramid(2, 5, (40, 52), seed=6).values())
    scales = [0.25, 0.125, 0.0625, 0.03125]
    rois = random_rois(70, 2, 10, 13, 0.25, generator=g)
    levels = torch.randint(0, 4, (70,), generator=g)
    for sampling_ratio, aligned in [(0, False), (2, True), (1, False)]:
        out = mk.multi_scale_roi_align(feats, rois, levels, scales, (3, 4), sampling_ratio, aligned)
        expected = ref.multi_scale_roi_align(feats, rois, levels, scales, 3, 4, sampling_ratio, aligned)
        torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-10)


def test_empty_boxes():
    x = pyramid(2, 3, (64, 64), seed=7)
    boxes = [torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, 4, dtype=torch.float64)]
    out = mk.MultiScaleRoIAlign(NAMES, 7, 2)(x, boxes, [(64, 64), (64, 64)])
    assert out.shape == (0, 3, 7, 7)


def test_gradcheck_all_levels():
    feats = [f.requires_grad_() for f in pyramid(2, 2, (32, 40), seed=8).values()]
    boxes = box_lists([6, 5], [(32, 40), (30, 36)], seed=9)
    pooler = mk.MultiScaleRoIAlign(NAMES, (2, 3), 2, canonical_scale=16, canonical_level=4)

    def run(*levels):
        return pooler(dict(zip(NAMES, levels)), boxes, [(32, 40), (30, 36)])

    assert torch.autograd.gradcheck(run, tuple(feats))


def test_backward_matches_torchvision():
    image_shapes = [(100, 120), (90, 128)]
    feats = pyramid(2, 7, (100, 128), dtype=torch.float32, seed=10)
    boxes = [b.float() for b in box_lists([60, 45], image_shapes, seed=11)]
    grads = []
    for pooler in (mk.MultiScaleRoIAlign(NAMES, 7, 2), torchvision.ops.MultiScaleRoIAlign(NAMES, 7, 2)):
        x = {k: v.clone().requires_grad_() for k, v in feats.items()}
        out = pooler(x, boxes, image_shapes)
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        grads.append([x[k].grad for k in NAMES])
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_opcheck():
    g = torch.Generator().manual_seed(12)
    feats = [f.float() for f in pyramid(2, 3, (32, 48), seed=12).values()]
    rois = random_rois(20, 2, 8, 12, 0.25, dtype=torch.float32, generator=g)
    levels = torch.randint(0, 4, (20,), generator=g)
    scales = [0.25, 0.125, 0.0625, 0.03125]
    args = (feats, rois, levels, scales, 3, 3, 2, False)
    torch.library.opcheck(torch.ops.maskx.multi_scale_roi_align.default, args)
    torch.library.opcheck(
        torch.ops.maskx.multi_scale_roi_align.default, ([f.requires_grad_() for f in feats], *args[1:])
    )
    grad = torch.randn(20, 3, 3, 3, generator=g)
    heights, widths = [f.shape[2] for f in feats], [f.shape[3] for f in feats]
    for channels_last in (False, True):
        torch.library.opcheck(
            torch.ops.maskx._multi_scale_roi_align_backward.default,
            (grad, rois, levels, scales, 3, 3, 2, 3, heights, widths, 2, False, channels_last),
        )


def test_torch_compile_fullgraph_has_no_host_sync():
    # fullgraph=True fails on any graph break, e.g. a data-dependent host synchronisation.
    image_shapes = [(64, 80), (60, 72)]
    feats = pyramid(2, 4, (64, 80), dtype=torch.float32, seed=13)
    boxes = [b.float() for b in box_lists([9, 7], image_shapes, seed=14)]
    pooler = mk.MultiScaleRoIAlign(NAMES, 3, 2)
    compiled = torch.compile(pooler, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(feats, boxes, image_shapes), pooler(feats, boxes, image_shapes))


def test_torch_compile_dynamic_shapes():
    # With dynamic=True the level scales come from symbolic sizes: they must still reach
    # the op as plain floats (one graph per pyramid geometry), forward and backward.
    pooler = mk.MultiScaleRoIAlign(NAMES, 3, 2)
    compiled = torch.compile(pooler, fullgraph=True, dynamic=True, backend="aot_eager")
    for batch, image_size, seed in ((2, (64, 80), 17), (3, (96, 72), 18)):
        image_shapes = [image_size] * batch
        feats = {k: v.float().requires_grad_() for k, v in pyramid(batch, 4, image_size, seed=seed).items()}
        boxes = [b.float() for b in box_lists([6] * batch, image_shapes, seed=seed + 1)]
        expected = pooler(feats, boxes, image_shapes)
        expected_grads = torch.autograd.grad(expected.sum(), list(feats.values()))
        out = compiled(feats, boxes, image_shapes)
        grads = torch.autograd.grad(out.sum(), list(feats.values()))
        torch.testing.assert_close(out, expected)
        for g, e in zip(grads, expected_grads):
            torch.testing.assert_close(g, e)


class TestBadInput:
    feats = pyramid(2, 3, (32, 32), seed=15)
    boxes = box_lists([3, 2], [(32, 32), (32, 32)], seed=16)

    def test_missing_feature_map(self):
        with pytest.raises(ValueError, match="missing"):
            mk.MultiScaleRoIAlign(["p2", "p9"], 2, 2)(self.feats, self.boxes, [(32, 32)] * 2)

    def test_mismatched_levels(self):
        bad = dict(self.feats, p3=self.feats["p3"][:, :2])
        with pytest.raises(ValueError, match="must share"):
            mk.MultiScaleRoIAlign(NAMES, 2, 2)(bad, self.boxes, [(32, 32)] * 2)
        bad = dict(self.feats, p4=self.feats["p4"].float())
        with pytest.raises(ValueError, match="must share"):
            mk.MultiScaleRoIAlign(NAMES, 2, 2)(bad, self.boxes, [(32, 32)] * 2)

    def test_empty_image_shapes(self):
        with pytest.raises(ValueError, match="image_shapes"):
            mk.MultiScaleRoIAlign(NAMES, 2, 2)(self.feats, self.boxes, [])

    def test_levels_argument(self):
        feats = list(self.feats.values())
        rois = torch.tensor([[0, 1.0, 1.0, 9.0, 9.0]], dtype=torch.float64)
        scales = [0.25, 0.125, 0.0625, 0.03125]
        with pytest.raises(ValueError, match="int64"):
            mk.multi_scale_roi_align(feats, rois, torch.zeros(1, dtype=torch.int32), scales, 2)
        with pytest.raises(ValueError, match="levels must be a Tensor\\[K\\]"):
            mk.multi_scale_roi_align(feats, rois, torch.zeros(2, dtype=torch.int64), scales, 2)
        with pytest.raises(ValueError, match="level"):
            mk.multi_scale_roi_align(feats, rois, torch.tensor([4]), scales, 2)
        with pytest.raises(ValueError, match="scales"):
            mk.multi_scale_roi_align(feats, rois, torch.tensor([0]), scales[:3], 2)
        with pytest.raises(ValueError, match="batch index"):
            mk.multi_scale_roi_align(feats, rois + torch.tensor([2.0, 0, 0, 0, 0]), torch.tensor([0]), scales, 2)
        for bad in (0.0, -0.25, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="positive and finite"):
                mk.multi_scale_roi_align(feats, rois, torch.tensor([0]), [bad] + scales[1:], 2)


# CUDA: the kernels against the CPU ones in float64, forward and backward, with torch's
# deterministic algorithms off (atomic sums) and on.
def cuda_pyramid(g, layouts):
    """float64 maps of one to four levels of two images, on the CPU and copied to the CUDA
    device in the given layouts (roi_inputs.cuda_copy)."""
    shapes = [(16, 20), (8, 10), (4, 5), (2, 3)]
    cpu = [torch.randn(2, 3, h, w, generator=g, dtype=torch.float64) for h, w in shapes[: len(layouts)]]
    return cpu, [cuda_copy(f, layout) for f, layout in zip(cpu, layouts)]


@pytest.mark.needs_cuda
def test_cuda_forward_and_backward_match_cpu(deterministic):
    g = torch.Generator().manual_seed(4)
    features, on_device = cuda_pyramid(g, ["nchw", "channels_last", "strided", "nchw"])
    scales = [0.25, 0.125, 0.0625, 0.03125]
    rois = uniform_rois(30, 2, 16, 20, 0.25, generator=g)
    levels = torch.randint(0, 4, (30,), generator=g)
    args = (scales, 2, 3, 2, True)
    out = torch.ops.maskx.multi_scale_roi_align(on_device, rois.cuda(), levels.cuda(), *args)
    expected = torch.ops.maskx.multi_scale_roi_align(features, rois, levels, *args)
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-10, atol=1e-10)
    grad = torch.randn(30, 3, 2, 3, generator=g, dtype=torch.float64)
    sizes = ([f.shape[2] for f in features], [f.shape[3] for f in features])
    back_args = (scales, 2, 3, 2, 3, *sizes, 2, True)
    grads = torch.ops.maskx._multi_scale_roi_align_backward(grad.cuda(), rois.cuda(), levels.cuda(), *back_args)
    expected_grads = torch.ops.maskx._multi_scale_roi_align_backward(grad, rois, levels, *back_args)
    assert len(grads) == 4
    for ours, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.needs_cuda
def test_cuda_more_levels_than_one_launch_holds(deterministic):
    # Pyramids deeper than a launch's level table take several launches.
    g = torch.Generator().manual_seed(5)
    features = [torch.randn(1, 2, 3 + l, 4 + l, generator=g, dtype=torch.float64) for l in range(11)]
    scales = [1.0 / (1 + l) for l in range(11)]
    rois = uniform_rois(40, 1, 3, 4, 1.0, generator=g)
    levels = torch.randint(0, 11, (40,), generator=g)
    out = torch.ops.maskx.multi_scale_roi_align(
        [f.cuda() for f in features], rois.cuda(), levels.cuda(), scales, 2, 2, 0, False
    )
    expected = torch.ops.maskx.multi_scale_roi_align(features, rois, levels, scales, 2, 2, 0, False)
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-10, atol=1e-10)
    grad = torch.randn(40, 2, 2, 2, generator=g, dtype=torch.float64)
    sizes = ([f.shape[2] for f in features], [f.shape[3] for f in features])
    grads = torch.ops.maskx._multi_scale_roi_align_backward(
        grad.cuda(), rois.cuda(), levels.cuda(), scales, 2, 2, 1, 2, *sizes, 0, False
    )
    expected_grads = torch.ops.maskx._multi_scale_roi_align_backward(
        grad, rois, levels, scales, 2, 2, 1, 2, *sizes, 0, False
    )
    for ours, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.needs_cuda
def test_cuda_invalid_rois_pool_to_zero_and_get_no_gradient(deterministic):
    # The raw ops do not check RoI values on the GPU; bad RoIs must not read out of bounds.
    g = torch.Generator().manual_seed(6)
    features, on_device = cuda_pyramid(g, ["nchw", "nchw"])
    rois = uniform_rois(8, 2, 16, 20, 0.25, generator=g)
    levels = torch.randint(0, 2, (8,), generator=g)
    rois[1, 0] = 2.0  # batch index past the batch
    rois[2, 0] = -1.0
    rois[3, 0] = 0.5  # not an integer
    rois[4, 2] = float("nan")
    rois[5, 3] = float("inf")
    levels[6] = 2  # level past the pyramid
    levels[7] = -1
    valid = torch.tensor([True] + [False] * 7)
    args = ([0.25, 0.125], 2, 2, 0, True)
    out = torch.ops.maskx.multi_scale_roi_align(on_device, rois.cuda(), levels.cuda(), *args).cpu()
    assert bool((out[~valid] == 0).all())
    expected = torch.ops.maskx.multi_scale_roi_align(features, rois[valid], levels[valid], *args)
    torch.testing.assert_close(out[valid], expected, rtol=1e-10, atol=1e-10)
    single = torch.ops.maskx.roi_align(on_device[0], rois[:6].cuda(), 0.25, 2, 2, 0, True).cpu()
    assert bool((single[1:] == 0).all())
    grad = torch.randn(8, 3, 2, 2, generator=g, dtype=torch.float64)
    sizes = ([16, 8], [20, 10])
    grads = torch.ops.maskx._multi_scale_roi_align_backward(
        grad.cuda(), rois.cuda(), levels.cuda(), [0.25, 0.125], 2, 2, 2, 3, *sizes, 0, True
    )
    expected_grads = torch.ops.maskx._multi_scale_roi_align_backward(
        grad[valid], rois[valid], levels[valid], [0.25, 0.125], 2, 2, 2, 3, *sizes, 0, True
    )
    for ours, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.needs_cuda
def test_cuda_gradcheck(deterministic):
    # Atomic float64 sums may differ in the last bits between two backward passes.
    tol = 0.0 if deterministic else 1e-12
    g = torch.Generator().manual_seed(7)
    p0 = torch.randn(2, 2, 8, 8, generator=g, dtype=torch.float64).cuda().requires_grad_()
    p1 = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64).cuda().requires_grad_()
    boxes = uniform_rois(6, 2, 8, 8, 0.5, generator=g).cuda()
    levels = torch.tensor([0, 1, 0, 1, 1, 0], device="cuda")
    assert torch.autograd.gradcheck(
        lambda a, b: mk.multi_scale_roi_align([a, b], boxes, levels, [0.5, 0.25], 2, 2, False),
        (p0, p1),
        nondet_tol=tol,
    )


@pytest.mark.needs_cuda
def test_cuda_opcheck():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 3, 7, 6, generator=g).cuda().requires_grad_()
    rois = uniform_rois(4, 2, 7, 6, 1.0, generator=g).float().cuda()
    grad = torch.randn(4, 3, 2, 2, generator=g).cuda()
    features = [x, torch.randn(2, 3, 4, 3, generator=g).cuda().requires_grad_()]
    levels = torch.tensor([0, 1, 1, 0], device="cuda")
    torch.library.opcheck(
        torch.ops.maskx.multi_scale_roi_align.default, (features, rois, levels, [1.0, 0.5], 2, 2, 2, False)
    )
    torch.library.opcheck(
        torch.ops.maskx._multi_scale_roi_align_backward.default,
        (grad, rois, levels, [1.0, 0.5], 2, 2, 2, 3, [7, 4], [6, 3], 2, False),
    )


@pytest.mark.needs_cuda
def test_cuda_levels_on_another_device():
    x = torch.randn(2, 3, 5, 5, device="cuda")
    rois = torch.tensor([[0.0, 0.5, 0.5, 3.0, 3.5]], device="cuda")
    with pytest.raises(ValueError, match="levels are on"):
        torch.ops.maskx.multi_scale_roi_align([x], rois, torch.zeros(1, dtype=torch.long), [1.0], 2, 2, 2, False)
