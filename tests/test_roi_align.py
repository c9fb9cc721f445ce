"""maskx_kernels.roi_align: the CPU kernel against the reference and torchvision
(gradients, opcheck, torch.compile and bad input too), then the CUDA kernel against the
CPU one and torchvision, atomic and deterministic."""
import itertools

import pytest
import torch
import torchvision

import maskx_kernels as mk
from conftest import deterministic_algorithms
from maskx_kernels.reference import roi_align as ref
from roi_inputs import cuda_copy, random_features, random_rois, uniform_rois

TOLERANCE = {
    torch.float64: dict(rtol=1e-9, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.float16: dict(rtol=1e-2, atol=1e-2),
    torch.bfloat16: dict(rtol=4e-2, atol=4e-2),
}


def run_reference(x, rois, output_size, scale, sr, aligned):
    return ref.roi_align(x.double(), rois.double(), scale, output_size[0], output_size[1], sr, aligned)


# (batch, channels, height, width, num_rois, output_size, spatial_scale). The first cases
# have many RoIs per pixel (the packed path), the later ones few (RoIs read in place).
SHAPES = [
    (2, 16, 9, 11, 40, (7, 7), 0.5),
    (1, 37, 13, 7, 60, (3, 5), 1.0),
    (3, 5, 6, 17, 90, (2, 9), 0.25),
    (2, 33, 64, 80, 3, (7, 7), 0.5),
    (1, 19, 97, 55, 2, (14, 14), 0.125),
    (2, 1, 40, 40, 5, (1, 1), 1.0),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:4])) + f"-{s[4]}rois")
@pytest.mark.parametrize("sampling_ratio", [0, 1, 2, 3])
@pytest.mark.parametrize("aligned", [False, True])
def test_matches_reference_and_torchvision_float64(shape, sampling_ratio, aligned):
    n, c, h, w, k, output_size, scale = shape
    g = torch.Generator().manual_seed(hash((shape, sampling_ratio, aligned)) % 2**31)
    x = random_features(n, c, h, w, generator=g)
    rois = random_rois(k, n, h, w, scale, generator=g)
    out = mk.roi_align(x, rois, output_size, scale, sampling_ratio, aligned)
    expected = run_reference(x, rois, output_size, scale, sampling_ratio, aligned)
    torch.testing.assert_close(out, expected, **TOLERANCE[torch.float64])
    tv = torchvision.ops.roi_align(x, rois, output_size, scale, sampling_ratio, aligned)
    torch.testing.assert_close(out, tv, **TOLERANCE[torch.float64])
    assert out.abs().sum() > 0, "inputs must exercise non-zero outputs"


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("num_rois", [2, 150])
def test_memory_layouts(layout, num_rois):
    g = torch.Generator().manual_seed(num_rois)
    x = random_features(2, 35, 21, 18, layout=layout, generator=g)
    rois = random_rois(num_rois, 2, 21, 18, 0.5, generator=g)
    out = mk.roi_align(x, rois, (5, 4), 0.5, 2, True)
    assert out.is_contiguous()
    torch.testing.assert_close(out, run_reference(x, rois, (5, 4), 0.5, 2, True), **TOLERANCE[torch.float64])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("num_rois", [3, 120])
def test_low_precision_against_float64(dtype, layout, num_rois):
    g = torch.Generator().manual_seed(7 + num_rois)
    x = random_features(2, 20, 15, 23, dtype=dtype, layout=layout, generator=g)
    rois = random_rois(num_rois, 2, 15, 23, 0.5, dtype=dtype, generator=g)
    out = mk.roi_align(x, rois, (7, 7), 0.5, 0, False)
    assert out.dtype == dtype
    expected = run_reference(x, rois, (7, 7), 0.5, 0, False)
    torch.testing.assert_close(out.double(), expected, **TOLERANCE[dtype])


def test_box_list_and_module_match_tensor_form():
    g = torch.Generator().manual_seed(3)
    x = random_features(3, 6, 12, 14, generator=g)
    boxes = [random_rois(n, 1, 12, 14, 1.0, generator=g)[:, 1:] for n in (4, 0, 5)]
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype), b], 1) for i, b in enumerate(boxes)])
    expected = mk.roi_align(x, rois, 3, 1.0, 2)
    torch.testing.assert_close(mk.roi_align(x, boxes, 3, 1.0, 2), expected, rtol=0, atol=0)
    module = mk.RoIAlign((3, 3), 1.0, 2)
    torch.testing.assert_close(module(x, boxes), expected, rtol=0, atol=0)
    torch.testing.assert_close(torchvision.ops.roi_align(x, boxes, 3, 1.0, 2), expected)
    assert "RoIAlign(output_size=(3, 3)" in repr(module)


def test_empty_inputs():
    x = random_features(2, 4, 8, 8)
    out = mk.roi_align(x, torch.zeros(0, 5, dtype=torch.float64), (3, 2), 1.0)
    assert out.shape == (0, 4, 3, 2)
    rois = random_rois(5, 2, 8, 8, 1.0)
    assert mk.roi_align(x[:, :0], rois, 2, 1.0).shape == (5, 0, 2, 2)
    for height, width in [(0, 5), (4, 0), (0, 0)]:
        for aligned in (False, True):
            empty_map = random_features(2, 3, height, width).requires_grad_()
            pooled = mk.roi_align(empty_map, rois, 2, 1.0, 2, aligned)
            assert torch.equal(pooled, torch.zeros(5, 3, 2, 2, dtype=torch.float64))
            pooled.sum().backward()
            assert empty_map.grad.shape == empty_map.shape
    x = x.requires_grad_()
    empty = mk.roi_align(x, torch.zeros(0, 5, dtype=torch.float64), 2, 1.0)
    empty.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("num_rois", [2, 30])
@pytest.mark.parametrize("sampling_ratio,aligned", [(0, False), (2, True), (3, False)])
def test_gradcheck(num_rois, sampling_ratio, aligned):
    g = torch.Generator().manual_seed(num_rois + sampling_ratio)
    x = random_features(2, 3, 7, 9, generator=g).requires_grad_()
    rois = random_rois(num_rois, 2, 7, 9, 1.0, generator=g)
    assert torch.autograd.gradcheck(lambda t: mk.roi_align(t, rois, (3, 2), 1.0, sampling_ratio, aligned), (x,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("num_rois", [2, 80])
def test_backward_matches_reference(dtype, layout, num_rois):
    g = torch.Generator().manual_seed(11 + num_rois)
    x = random_features(2, 18, 11, 13, dtype=dtype, layout=layout, generator=g)
    rois = random_rois(num_rois, 2, 11, 13, 0.5, dtype=dtype, generator=g)
    grad_out = torch.randn(num_rois, 18, 4, 5, generator=g, dtype=torch.float64).to(dtype)
    x_ = x.detach().requires_grad_()
    mk.roi_align(x_, rois, (4, 5), 0.5, 2, True).backward(grad_out)
    x_ref = x.detach().double().requires_grad_()
    run_reference(x_ref, rois, (4, 5), 0.5, 2, True).backward(grad_out.double())
    assert x_.grad.dtype == dtype
    torch.testing.assert_close(x_.grad.double(), x_ref.grad, **TOLERANCE[dtype])
    assert x_ref.grad.abs().sum() > 0


@pytest.mark.parametrize("channels,num_rois", [(18, 2), (18, 80), (32, 80)])
def test_gradient_keeps_the_input_layout(channels, num_rois):
    """A channels-last input gets a channels-last gradient (else autograd copies it), with
    the values of the NCHW one; 2 RoIs take the sparse path, 80 the packed one."""
    g = torch.Generator().manual_seed(channels + num_rois)
    x = random_features(2, channels, 11, 13, layout="channels_last", generator=g).requires_grad_()
    rois = random_rois(num_rois, 2, 11, 13, 0.5, generator=g)
    grad_out = torch.randn(num_rois, channels, 4, 5, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad(mk.roi_align(x, rois, (4, 5), 0.5, 2, True), x, grad_out)
    assert grad.is_contiguous(memory_format=torch.channels_last) and not grad.is_contiguous()
    (nchw_grad,) = torch.autograd.grad(mk.roi_align(x.contiguous(), rois, (4, 5), 0.5, 2, True), x, grad_out)
    assert nchw_grad.is_contiguous()
    torch.testing.assert_close(grad, nchw_grad, rtol=1e-12, atol=1e-12)


def test_backward_is_deterministic():
    g = torch.Generator().manual_seed(5)
    x = random_features(2, 40, 30, 30, dtype=torch.float32, generator=g)
    rois = random_rois(300, 2, 30, 30, 1.0, dtype=torch.float32, generator=g)
    grad_out = torch.randn(300, 40, 7, 7, generator=g)
    grads = []
    for _ in range(3):
        x_ = x.clone().requires_grad_()
        mk.roi_align(x_, rois, 7, 1.0, 2).backward(grad_out)
        grads.append(x_.grad)
    assert all(torch.equal(grads[0], g_) for g_ in grads[1:])


def _opcheck_samples():
    g = torch.Generator().manual_seed(2)
    for (n, c, h, w, k), dtype, layout in itertools.product(
        [(2, 5, 9, 7, 6), (1, 17, 12, 12, 40), (2, 3, 5, 6, 0)], [torch.float32, torch.float64], ["nchw", "channels_last"]
    ):
        x = random_features(n, c, h, w, dtype=dtype, layout=layout, generator=g)
        yield x, random_rois(k, n, h, w, 1.0, dtype=dtype, generator=g), 1.0, 3, 4, 2, True


@pytest.mark.parametrize("sample", list(_opcheck_samples()), ids=lambda s: f"{tuple(s[0].shape)}-{s[0].dtype}-{s[1].shape[0]}")
def test_opcheck(sample):
    x, rois, *args = sample
    torch.library.opcheck(torch.ops.maskx.roi_align.default, (x.requires_grad_(), rois, *args))
    n, c, h, w = x.shape
    grad = torch.randn(rois.shape[0], c, 3, 4, dtype=x.dtype)
    spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned = args
    channels_last = not x.is_contiguous()
    torch.library.opcheck(
        torch.ops.maskx._roi_align_backward.default,
        (grad, rois, spatial_scale, pooled_h, pooled_w, n, c, h, w, sampling_ratio, aligned, channels_last),
    )


def test_torch_compile_fullgraph_forward_backward():
    g = torch.Generator().manual_seed(9)
    x = random_features(2, 6, 10, 12, dtype=torch.float32, generator=g)
    rois = random_rois(25, 2, 10, 12, 1.0, dtype=torch.float32, generator=g)

    def loss(t, r):
        return (mk.roi_align(t, r, (3, 3), 1.0, 2, True) ** 2).sum()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager", dynamic=True)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    compiled(x1, rois).backward()
    loss(x2, rois).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    # A second RoI count reuses the dynamic-shape graph.
    torch.testing.assert_close(compiled(x, rois[:7]), loss(x, rois[:7]))


def test_torch_compile_inductor():
    g = torch.Generator().manual_seed(10)
    x = random_features(1, 4, 8, 8, dtype=torch.float32, generator=g)
    rois = random_rois(9, 1, 8, 8, 1.0, dtype=torch.float32, generator=g)

    def pooled_relu(t, r):
        return torch.relu(mk.roi_align(t, r, 2, 1.0, 2, False)) * 2

    compiled = torch.compile(pooled_relu, fullgraph=True)
    torch.testing.assert_close(compiled(x, rois), pooled_relu(x, rois))


def test_64bit_indexing():
    # A [1, 1, 140000, 16384] input has 2.3e9 > 2^31 elements; torch.empty commits no
    # memory, so only the written tail costs RAM. The RoI reads its last rows.
    h, w, rows = 140_000, 16_384, 16
    x = torch.empty(1, 1, h, w)
    g = torch.Generator().manual_seed(4)
    tail = torch.randn(1, 1, rows, 64, generator=g)
    x[:, :, h - rows :, :64] = tail
    y0 = h - rows
    box = [3.5, 2.25, 40.25, 9.75]
    rois = torch.tensor([[0, box[0], y0 + box[1], box[2], y0 + box[3]]])
    out = mk.roi_align(x, rois, (2, 5), 1.0, 2, True)
    expected = run_reference(tail, torch.tensor([[0.0, *box]]), (2, 5), 1.0, 2, True)
    torch.testing.assert_close(out.double(), expected, **TOLERANCE[torch.float32])


class TestBadInput:
    x = random_features(2, 3, 8, 8)

    def rois(self, *rows):
        return torch.tensor(rows, dtype=torch.float64)

    @pytest.mark.parametrize("index", [-1, 2, 7, 0.5, float("nan")])
    def test_batch_index_out_of_range_or_not_integer(self, index):
        with pytest.raises(ValueError, match="batch index"):
            mk.roi_align(self.x, self.rois([0, 1, 1, 4, 4], [index, 1, 1, 4, 4]), 2)
        with pytest.raises(ValueError, match="batch index"):
            torch.ops.maskx.roi_align(self.x, self.rois([index, 1, 1, 4, 4]), 1.0, 2, 2, 2, False)

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
    def test_non_finite_coordinates(self, value):
        with pytest.raises(ValueError, match="non-finite"):
            mk.roi_align(self.x, self.rois([0, 1, value, 4, 4]), 2)

    def test_shapes_dtypes_devices_sizes(self):
        good = self.rois([0, 1, 1, 4, 4])
        cases = [
            (lambda: mk.roi_align(self.x[0], good, 2), "Tensor\\[N, C, H, W\\]"),
            (lambda: mk.roi_align(self.x, good[:, :4], 2), "Tensor\\[K, 5\\]"),
            (lambda: mk.roi_align(self.x, good[0], 2), "Tensor\\[K, 5\\]"),
            (lambda: mk.roi_align(self.x, good.float(), 2), "dtype"),
            (lambda: mk.roi_align(self.x.long(), good.long(), 2), "floating"),
            (lambda: mk.roi_align(self.x, good, 0), "positive"),
            (lambda: mk.roi_align(self.x, good, (2, -1)), "positive"),
            (lambda: mk.roi_align(self.x, good, 2, spatial_scale=0.0), "spatial_scale"),
            (lambda: mk.roi_align(self.x, good.to("meta"), 2), "device"),
            (lambda: mk.roi_align(self.x, [good[:, 1:4]], 2), "Tensor\\[L, 4\\]"),
            (lambda: mk.roi_align(self.x, "boxes", 2), "list of Tensor"),
            (lambda: torch.ops.maskx.roi_align(self.x, good.float(), 1.0, 2, 2, 2, False), "dtype"),
            (lambda: torch.ops.maskx.roi_align(self.x, good, -1.0, 2, 2, 2, False), "spatial_scale"),
        ]
        for call, message in cases:
            with pytest.raises(ValueError, match=message):
                call()


# CUDA: the kernels against the CPU ones in float64 (and torchvision), forward and backward,
# with torch's deterministic algorithms off (atomic sums) and on.
CUDA_TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 4e-2}
LAYOUTS = ["nchw", "channels_last", "strided"]


def cpu_roi_align(x, rois, *args):
    """The CPU kernel in float64 on the (rounded) values of x and rois."""
    return torch.ops.maskx.roi_align(x.detach().cpu().double(), rois.cpu().double(), *args)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cuda_forward_matches_cpu(dtype, layout):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 13, 11, generator=g, dtype=torch.float64).to(dtype)
    rois = uniform_rois(17, 2, 13, 11, 0.5, generator=g).to(dtype)
    for ratio, aligned in [(0, False), (2, True), (1, False), (3, True)]:
        args = (0.5, 3, 4, ratio, aligned)
        out = torch.ops.maskx.roi_align(cuda_copy(x, layout), rois.cuda(), *args)
        assert out.dtype == dtype and out.is_contiguous()
        tol = CUDA_TOLERANCE[dtype]
        torch.testing.assert_close(out.cpu().double(), cpu_roi_align(x, rois, *args), rtol=tol, atol=tol)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("ratio", [0, 2])
def test_cuda_forward_matches_torchvision(aligned, ratio):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 25, 31, generator=g).cuda()
    rois = uniform_rois(40, 2, 25, 31, 0.25, generator=g).float().cuda()
    ours = mk.roi_align(x, rois, (7, 7), 0.25, ratio, aligned)
    theirs = torchvision.ops.roi_align(x, rois, (7, 7), 0.25, ratio, aligned)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_cuda_backward_matches_cpu(deterministic, dtype):
    g = torch.Generator().manual_seed(2)
    rois = uniform_rois(23, 2, 9, 12, 0.5, generator=g).to(dtype)
    grad = torch.randn(23, 4, 3, 2, generator=g, dtype=torch.float64).to(dtype)
    for ratio, aligned in [(0, False), (2, True)]:
        args = (0.5, 3, 2, 2, 4, 9, 12, ratio, aligned)
        out = torch.ops.maskx._roi_align_backward(grad.cuda(), rois.cuda(), *args)
        expected = torch.ops.maskx._roi_align_backward(grad.double(), rois.double(), *args)
        assert out.dtype == dtype and out.shape == (2, 4, 9, 12)
        tol = CUDA_TOLERANCE[dtype]
        torch.testing.assert_close(out.cpu().double(), expected, rtol=tol, atol=tol)


@pytest.mark.needs_cuda
def test_cuda_deterministic_backward_is_reproducible_and_matches_atomic():
    g = torch.Generator().manual_seed(3)
    # Many overlapping RoIs on a small map: atomics collide on every pixel.
    rois = uniform_rois(300, 2, 20, 24, 1.0, generator=g).float().cuda()
    grad = torch.randn(300, 16, 7, 7, generator=g).cuda()
    args = (1.0, 7, 7, 2, 16, 20, 24, 0, True)
    with deterministic_algorithms(True):
        first = torch.ops.maskx._roi_align_backward(grad, rois, *args)
        second = torch.ops.maskx._roi_align_backward(grad, rois, *args)
    with deterministic_algorithms(False):
        atomic = torch.ops.maskx._roi_align_backward(grad, rois, *args)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, atomic, rtol=1e-5, atol=1e-4)


@pytest.mark.needs_cuda
def test_cuda_empty(deterministic):
    x = torch.randn(2, 3, 5, 6, device="cuda")
    out = torch.ops.maskx.roi_align(x, torch.empty(0, 5, device="cuda"), 1.0, 2, 2, 2, False)
    assert out.shape == (0, 3, 2, 2)
    grad = torch.ops.maskx._roi_align_backward(
        torch.empty(0, 3, 2, 2, device="cuda"), torch.empty(0, 5, device="cuda"), 1.0, 2, 2, 2, 3, 5, 6, 2, False
    )
    assert grad.shape == (2, 3, 5, 6) and bool((grad == 0).all())


@pytest.mark.needs_cuda
def test_cuda_gradcheck(deterministic):
    # Atomic float64 sums may differ in the last bits between two backward passes.
    tol = 0.0 if deterministic else 1e-12
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 2, 6, 7, generator=g, dtype=torch.float64).cuda().requires_grad_()
    rois = uniform_rois(5, 2, 6, 7, 1.0, generator=g).cuda()
    for output_size, ratio, aligned in [((2, 3), 2, True), ((3, 2), 0, False)]:
        assert torch.autograd.gradcheck(
            lambda t: mk.roi_align(t, rois, output_size, 1.0, ratio, aligned), (x,), nondet_tol=tol
        )


@pytest.mark.needs_cuda
def test_cuda_opcheck():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 3, 7, 6, generator=g).cuda().requires_grad_()
    rois = uniform_rois(4, 2, 7, 6, 1.0, generator=g).float().cuda()
    torch.library.opcheck(torch.ops.maskx.roi_align.default, (x, rois, 1.0, 2, 2, 2, True))
    grad = torch.randn(4, 3, 2, 2, generator=g).cuda()
    torch.library.opcheck(torch.ops.maskx._roi_align_backward.default, (grad, rois, 1.0, 2, 2, 2, 3, 7, 6, 0, False))


@pytest.mark.needs_cuda
def test_cuda_compile():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(1, 4, 9, 9, generator=g).cuda()
    rois = uniform_rois(5, 1, 9, 9, 1.0, generator=g).float().cuda()

    def pool(t):
        return mk.roi_align(t, rois, 3, 1.0, 2, True)

    compiled = torch.compile(pool, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), pool(x))


# One case per check, so that a failure (or a crash) names the check it came from.
CUDA_BAD_CALLS = {
    "devices differ": (lambda x, rois: mk.roi_align(x, rois.cpu(), 2), "one device"),
    "batch index": (
        lambda x, rois: mk.roi_align(x, torch.tensor([[2.0, 0.5, 0.5, 3.0, 3.5]], device="cuda"), 2),
        "batch index",
    ),
    "native: rois device": (lambda x, rois: torch.ops.maskx.roi_align(x, rois.cpu(), 1.0, 2, 2, 2, False), "rois are on"),
    "native: grad shape": (
        lambda x, rois: torch.ops.maskx._roi_align_backward(
            torch.randn(1, 3, 2, 3, device="cuda"), rois, 1.0, 2, 2, 2, 3, 5, 5, 2, False
        ),
        "grad has shape",
    ),
    "native: output size": (lambda x, rois: torch.ops.maskx.roi_align(x, rois, 1.0, 0, 2, 2, False), "output size"),
    "native: scale": (lambda x, rois: torch.ops.maskx.roi_align(x, rois, -1.0, 2, 2, 2, False), "spatial_scale"),
}


@pytest.mark.needs_cuda
@pytest.mark.parametrize("case", list(CUDA_BAD_CALLS))
def test_cuda_bad_inputs(case):
    call, match = CUDA_BAD_CALLS[case]
    x = torch.randn(2, 3, 5, 5, device="cuda")
    rois = torch.tensor([[0.0, 0.5, 0.5, 3.0, 3.5]], device="cuda")
    with pytest.raises(ValueError, match=match):
        call(x, rois)
