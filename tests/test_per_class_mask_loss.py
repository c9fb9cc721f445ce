"""maskx_kernels.per_class_mask_loss against binary_cross_entropy_with_logits of the
explicit all-class conv then select over the valid RoIs (maskx_kernels.reference.mask_logits),
on the CPU and the CUDA device."""
import pytest
import torch
import torch.nn.functional as F

import maskx_kernels as mk
from conftest import assert_same_gradients, cpu_and_cuda
from mask_logits_cases import BAD_SHARED_ARGS, TOL, good_args, make, reference_in_float64, to_device
from maskx_kernels.reference import mask_logits as ref


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_opcheck(device):
    for seed, shape in enumerate([(5, 4, 3, 3, 3), (7, 9, 5, 6, 4), (0, 3, 2, 2, 2)]):
        f, w, cls, b, a, t, v = to_device(make(*shape, seed=seed), device)
        for requires_grad in (False, True):
            inputs = [x.clone().requires_grad_(requires_grad) for x in (f, w, b, a)]
            for valid in (v, None):
                torch.library.opcheck(
                    torch.ops.maskx.per_class_mask_loss.default, (inputs[0], inputs[1], cls, t, inputs[2], inputs[3], valid)
                )
        grad = torch.tensor(0.7, device=device)
        torch.library.opcheck(torch.ops.maskx._per_class_mask_loss_backward.default, (grad, f, w, cls, t, b, a, v))


def test_compile():
    f, w, cls, b, a, t, v = make(5, 6, 4, 4, 3, seed=9)
    v[0] = True

    def fn(f, w, b, a):
        return mk.per_class_mask_loss(f, w, cls, t, b, a, v)

    assert_same_gradients(torch.compile(fn, fullgraph=True, backend="aot_eager"), fn, (f, w, b, a))


@pytest.mark.parametrize("shape", [(6, 5, 4, 3, 4), (12, 17, 9, 7, 5), (3, 32, 28, 28, 81)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_loss_matches_reference(shape, dtype):
    f, w, cls, b, a, t, v = make(*shape, dtype=dtype, seed=sum(shape))
    v[0] = True
    loss = mk.per_class_mask_loss(f, w, cls, t, b, a, v)
    expected = reference_in_float64(ref.per_class_mask_loss, f, w, cls, t, b, a, v)
    assert loss.dim() == 0 and loss.dtype == dtype
    torch.testing.assert_close(loss.double(), expected, **TOL[dtype])
    torch.testing.assert_close(
        mk.per_class_mask_loss(f, w, cls, t, b, a).double(), reference_in_float64(ref.per_class_mask_loss, f, w, cls, t, b, a), **TOL[dtype]
    )


def test_loss_is_stable_for_large_logits():
    f, w, cls, b, a, t, v = make(3, 4, 5, 5, 2, dtype=torch.float32)
    f = f * 1e4
    loss = mk.per_class_mask_loss(f, w, cls, t, b, a)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss.double(), reference_in_float64(ref.per_class_mask_loss, f, w, cls, t, b, a), rtol=1e-4, atol=1e-2)


def test_loss_ignores_invalid_rois_entirely():
    """Invalid RoIs' features are never read: NaNs there change nothing."""
    f, w, cls, b, a, t, v = make(6, 5, 4, 4, 3)
    v = torch.tensor([True, False, True, False, False, True])
    poisoned = f.clone()
    poisoned[~v] = float("nan")
    poisoned.requires_grad_()
    loss = mk.per_class_mask_loss(poisoned, w, cls, t, b, a, v)
    torch.testing.assert_close(loss, ref.per_class_mask_loss(f, w, cls, t, b, a, v))
    loss.backward()
    assert torch.isfinite(poisoned.grad).all() and torch.equal(poisoned.grad[~v], torch.zeros_like(poisoned.grad[~v]))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("rois", [0, 4])
def test_loss_without_valid_rois_is_a_differentiable_zero(rois, device):
    f, w, cls, b, a, t, _ = to_device(make(rois, 5, 4, 4, 3), device)
    inputs = [x.clone().requires_grad_() for x in (f, w, b, a)]
    valid = torch.zeros(rois, dtype=torch.bool, device=device)
    loss = mk.per_class_mask_loss(inputs[0], inputs[1], cls, t, inputs[2], inputs[3], valid)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    for x in inputs:
        assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_loss_gradcheck(device):
    f, w, cls, b, a, t, _ = to_device(make(5, 3, 2, 3, 3, dtype=torch.float64, seed=4), device)
    cls = torch.tensor([1, 1, 0, 2, 1], device=device)
    v = torch.tensor([True, False, True, True, True], device=device)
    inputs = [x.requires_grad_() for x in (f, w, b, a)]
    assert torch.autograd.gradcheck(lambda f, w, b, a: mk.per_class_mask_loss(f, w, cls, t, b, a, v), inputs)


def test_loss_backward_matches_reference():
    f, w, cls, b, a, t, v = make(9, 16, 7, 6, 4, seed=8)
    v[1] = True
    grads = []
    for fn in (mk.per_class_mask_loss, ref.per_class_mask_loss):
        inputs = [x.clone().requires_grad_() for x in (f, w, b, a)]
        (3 * fn(inputs[0], inputs[1], cls, t, inputs[2], inputs[3], v)).backward()
        grads.append([x.grad for x in inputs])
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)


def test_loss_is_deterministic():
    """RoIs go to whichever thread is free, so the RoI-to-thread assignment changes from
    call to call (and with the thread count); the loss and its gradients must not."""
    f, w, cls, b, a, t, _ = make(48, 12, 5, 7, 6, seed=9)
    v = torch.arange(48) < 20  # a block of valid RoIs: uneven work per thread

    def run():
        inputs = [x.clone().requires_grad_() for x in (f, w, b, a)]
        loss = mk.per_class_mask_loss(inputs[0], inputs[1], cls, t, inputs[2], inputs[3], v)
        loss.backward()
        return [loss.detach()] + [x.grad for x in inputs]

    first, second = run(), run()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = run()
    finally:
        torch.set_num_threads(threads)
    for x, y, z in zip(first, second, single):
        assert torch.equal(x, y) and torch.equal(x, z)


def test_logits_and_loss_agree_with_bce():
    f, w, cls, b, a, t, v = make(8, 10, 5, 5, 4, seed=11)
    v[2] = True
    logits = mk.per_class_mask_logits(f, w, cls, b, a)
    torch.testing.assert_close(mk.per_class_mask_loss(f, w, cls, t, b, a, v), F.binary_cross_entropy_with_logits(logits[v], t[v]))


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(targets=torch.rand(2, 4, 3)), "targets must be"),
        (dict(targets=torch.rand(2, 4, 4, dtype=torch.float64)), "dtype"),
        (dict(targets=torch.full((2, 4, 4), 1.5)), r"\[0, 1\]"),
        (dict(targets=torch.full((2, 4, 4), -0.5)), r"\[0, 1\]"),
        (dict(valid=torch.tensor([1, 0])), "bool"),
        (dict(valid=torch.tensor([True])), "valid must be"),
    ],
)
def test_loss_bad_inputs(bad, match):
    args = {**good_args(), "targets": torch.rand(2, 4, 4), **bad}
    with pytest.raises(ValueError, match=match):
        mk.per_class_mask_loss(**args)


@pytest.mark.parametrize("bad,error,match", BAD_SHARED_ARGS)
def test_bad_shared_inputs(bad, error, match):
    with pytest.raises(error, match=match):
        mk.per_class_mask_loss(**{**good_args(), **bad}, targets=torch.rand(2, 4, 4))


# CUDA: the loss and its gradients against the float64 reference up to a real head's
# size, and the check of CUDA targets.
@pytest.mark.needs_cuda
@pytest.mark.parametrize("shape", [(6, 5, 4, 3, 4), (12, 17, 9, 7, 5), (7, 256, 28, 28, 81)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_cuda_loss_and_gradients_match_reference(shape, dtype):
    f, w, cls, b, a, t, v = make(*shape, dtype=dtype, seed=sum(shape))
    v[0] = True
    inputs = [x.cuda().requires_grad_() for x in (f, w, b, a)]
    loss = mk.per_class_mask_loss(inputs[0], inputs[1], cls.cuda(), t.cuda(), inputs[2], inputs[3], v.cuda())
    loss.backward()
    expected_inputs = [x.double().requires_grad_() for x in (f, w, b, a)]
    expected = ref.per_class_mask_loss(
        expected_inputs[0], expected_inputs[1], cls, t.double(), expected_inputs[2], expected_inputs[3], v
    )
    expected.backward()
    torch.testing.assert_close(loss.cpu().double(), expected.detach(), **TOL[dtype])
    tol = TOL[dtype] if dtype != torch.bfloat16 else dict(atol=5e-2, rtol=5e-2)
    for x, y in zip(inputs, expected_inputs):
        torch.testing.assert_close(x.grad.cpu().double(), y.grad, **tol)


@pytest.mark.needs_cuda
def test_cuda_bad_target_values():
    f, w, cls, b, a, t, v = to_device(make(3, 4, 5, 5, 3, seed=8), "cuda")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mk.per_class_mask_loss(f, w, cls, t + 1.5, b, a, v)
