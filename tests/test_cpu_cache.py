"""The CPU output cache (maskx_kernels.cpu_cache): freed outputs are reused, never while
alive, within the limit; and every kernel that takes its output from the cache writes all
of it (each test first leaves a NaN-filled block in the cache for the kernel to get)."""
import os
import subprocess
import sys

import pytest
import torch
import torchvision

import maskx_kernels as mk
from mask_logits_cases import make
from maskx_kernels.reference import mask_logits as ref
from roi_inputs import random_rois

MiB = 1 << 20


@pytest.fixture
def cache_limit():
    """Sets the limit for one test and restores the previous one (and an empty cache)."""
    previous = mk.cpu_cache_limit()
    yield mk.set_cpu_cache_limit
    mk.set_cpu_cache_limit(previous)
    mk.empty_cpu_cache()


def leave_poisoned_block(t: torch.Tensor) -> None:
    """Fills an output with NaN and frees it: the cache now holds a block of NaNs."""
    t.detach().fill_(float("nan"))


def pooling_inputs(seed, num_rois=120, channels=256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, channels, 19, 23, generator=g)
    rois = random_rois(num_rois, 2, 19, 23, 0.5, dtype=torch.float32, generator=g)
    return x, rois


def test_freed_output_is_reused_and_fully_rewritten(cache_limit):
    cache_limit(64 * MiB)
    mk.empty_cpu_cache()
    x, rois = pooling_inputs(0)
    first = mk.roi_align(x, rois, 7, 0.5, 2, True)
    assert first.nbytes >= 4 * MiB
    address = first.data_ptr()
    leave_poisoned_block(first)
    del first
    assert mk.cpu_cache_bytes() >= 4 * MiB
    x, rois = pooling_inputs(1)
    second = mk.roi_align(x, rois, 7, 0.5, 2, True)
    assert second.data_ptr() == address and mk.cpu_cache_bytes() == 0
    torch.testing.assert_close(second, torchvision.ops.roi_align(x, rois, 7, 0.5, 2, True))


def test_live_outputs_never_share_memory(cache_limit):
    cache_limit(64 * MiB)
    x, rois = pooling_inputs(2)
    outputs = [mk.roi_align(x, rois, 7, 0.5, 2, True) for _ in range(3)]
    assert len({o.data_ptr() for o in outputs}) == 3
    for o in outputs[1:]:
        torch.testing.assert_close(o, outputs[0], rtol=0, atol=0)


def test_limit_zero_keeps_nothing(cache_limit):
    x, rois = pooling_inputs(3)
    out = mk.roi_align(x, rois, 7, 0.5, 2, True)
    del out
    assert mk.cpu_cache_bytes() > 0
    cache_limit(0)
    assert mk.cpu_cache_bytes() == 0
    out = mk.roi_align(x, rois, 7, 0.5, 2, True)
    del out
    assert mk.cpu_cache_bytes() == 0


def test_oldest_blocks_are_released_over_the_limit(cache_limit):
    x, rois = pooling_inputs(4)
    outputs = [mk.roi_align(x, rois, 7, 0.5, 2, True) for _ in range(3)]
    mk.empty_cpu_cache()
    del outputs[0]
    block = mk.cpu_cache_bytes()
    assert block >= outputs[0].nbytes
    cache_limit(block + block // 2)  # room for one block
    outputs.clear()
    assert mk.cpu_cache_bytes() == block
    mk.empty_cpu_cache()
    assert mk.cpu_cache_bytes() == 0


def test_cached_output_storage_resizes(cache_limit):
    x, rois = pooling_inputs(5)
    out = mk.roi_align(x, rois, 7, 0.5, 2, True)
    expected = out.clone()
    out.resize_(2 * out.numel())
    torch.testing.assert_close(out[: expected.numel()].view_as(expected), expected, rtol=0, atol=0)


def test_bad_limits(cache_limit):
    with pytest.raises(ValueError, match=">= 0"):
        mk.set_cpu_cache_limit(-1)
    with pytest.raises(TypeError):
        mk.set_cpu_cache_limit("1 GiB")


@pytest.mark.parametrize("value,expected", [("7", "7340032"), ("0", "0"), ("lots", "ValueError")])
def test_limit_from_environment(value, expected):
    code = (
        "import maskx_kernels as mk\n"
        "try:\n    print(mk.cpu_cache_limit())\n"
        "except ValueError as e:\n    print('ValueError', e)\n"
    )
    env = dict(os.environ, MASKX_CPU_CACHE_MB=value)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cache keeps blocks on Linux only")
def test_fork_while_another_thread_frees_cached_outputs():
    """A fork must not leave the child a cache lock that a thread of the parent held: the
    child's first cached allocation would hang. Before the fork handlers, about one fork
    in fifty hung here."""
    probe = os.path.join(os.path.dirname(__file__), "cache_fork_probe.py")
    package_root = os.path.dirname(os.path.dirname(mk.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, probe, "200"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0"], f"a child hung on the cache's lock: {run.stdout}"


def test_roi_align_backward_writes_every_gradient(cache_limit):
    cache_limit(64 * MiB)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 64, 128, 129, generator=g)
    rois = random_rois(40, 1, 128, 129, 0.25, dtype=torch.float32, generator=g)
    grad = torch.randn(40, 64, 5, 5, generator=g)
    leave_poisoned_block(torch.ops.maskx._roi_align_backward(grad, rois, 0.25, 5, 5, 1, 64, 128, 129, 2, False))
    x.requires_grad_()
    mk.roi_align(x, rois, 5, 0.25, 2, False).backward(grad)
    expected = torch.zeros_like(x)
    expected.requires_grad_()
    torchvision.ops.roi_align(expected, rois, 5, 0.25, 2, False).backward(grad)
    assert x.grad.nbytes >= 4 * MiB
    torch.testing.assert_close(x.grad, expected.grad)


def test_multi_scale_roi_align_writes_every_output_and_gradient(cache_limit):
    cache_limit(64 * MiB)
    names = ["p2", "p3"]
    g = torch.Generator().manual_seed(7)
    feats = {n: torch.randn(1, 128, s, s + 1, generator=g, requires_grad=True) for n, s in zip(names, (96, 48))}
    boxes = [random_rois(200, 1, 384, 388, 1.0, dtype=torch.float32, generator=g)[:, 1:]]
    ours, theirs = mk.MultiScaleRoIAlign(names, 7, 2), torchvision.ops.MultiScaleRoIAlign(names, 7, 2)
    leave_poisoned_block(ours(feats, boxes, [(384, 388)]))
    out = ours(feats, boxes, [(384, 388)])
    expected = theirs(feats, boxes, [(384, 388)])
    tol = dict(rtol=1e-4, atol=1e-4)  # float32 sample coordinates, rounded in another order
    torch.testing.assert_close(out, expected, **tol)
    grad = torch.randn_like(out)
    ours_grads = torch.autograd.grad(out, list(feats.values()), grad)
    for gr in ours_grads:
        leave_poisoned_block(gr)
    del ours_grads
    ours_grads = torch.autograd.grad(ours(feats, boxes, [(384, 388)]), list(feats.values()), grad)
    for got, want in zip(ours_grads, torch.autograd.grad(expected, list(feats.values()), grad)):
        torch.testing.assert_close(got, want, **tol)


@pytest.mark.parametrize("loss", [False, True])
def test_mask_kernel_backward_writes_every_feature_gradient(cache_limit, loss):
    cache_limit(64 * MiB)
    f, w, cls, b, a, targets, valid = make(9, 256, 28, 28, 5, seed=8)
    f.requires_grad_()
    assert f.nbytes >= 4 * MiB

    def feature_grad(fn):
        if loss:
            return torch.autograd.grad(fn.per_class_mask_loss(f, w, cls, targets, b, a, valid), f)[0]
        return torch.autograd.grad(fn.per_class_mask_logits(f, w, cls, b, a), f, torch.ones(9, 28, 28))[0]

    leave_poisoned_block(feature_grad(mk))
    torch.testing.assert_close(feature_grad(mk), feature_grad(ref))
