"""Random inputs shared by the per_class_mask_logits and per_class_mask_loss tests."""
import torch

TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-10),
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.float16: dict(atol=2e-2, rtol=2e-2),
    torch.bfloat16: dict(atol=1e-1, rtol=5e-2),
}
def make(r, k, h, w, c, dtype=torch.float32, seed=0, bias=True, agnostic=True):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(r, k, h, w, generator=g, dtype=torch.float64).to(dtype)
    class_weights = torch.randn(c, k, generator=g, dtype=torch.float64).div(k**0.5).to(dtype)
    classes = torch.randint(0, c, (r,), generator=g)
    class_bias = torch.randn(c, generator=g, dtype=torch.float64).to(dtype) if bias else None
    agn = torch.randn(r, h, w, generator=g, dtype=torch.float64).to(dtype) if agnostic else None
    targets = torch.rand(r, h, w, generator=g, dtype=torch.float64).to(dtype)
    valid = torch.rand(r, generator=g) < 0.6
    return features, class_weights, classes, class_bias, agn, targets, valid


def to_device(tensors, device):
    """The tensors on a device (a None stays None)."""
    return [t.to(device) if t is not None else None for t in tensors]


def reference_in_float64(fn, *args, **kwargs):
    cast = [a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    return fn(*cast, **kwargs)


BAD_SHARED_ARGS = [
    (dict(features=torch.randn(2, 3, 4)), ValueError, "features must be"),
    (dict(features=torch.randint(0, 3, (2, 3, 4, 4))), ValueError, "floating"),
    (dict(class_weights=torch.randn(5, 4)), ValueError, "class_weights must be"),
    (dict(class_weights=torch.randn(5, 3, dtype=torch.float64)), ValueError, "dtype"),
    (dict(classes=torch.tensor([0, 5])), IndexError, "class 5"),
    (dict(classes=torch.tensor([-1, 0])), IndexError, "class -1"),
    (dict(classes=torch.tensor([0, 1], dtype=torch.int32)), ValueError, "int64"),
    (dict(classes=torch.tensor([0, 1, 2])), ValueError, "classes must be"),
    (dict(class_bias=torch.randn(4)), ValueError, "class_bias must be"),
    (dict(agnostic_logits=torch.randn(2, 4, 5)), ValueError, "agnostic_logits must be"),
    (dict(agnostic_logits=torch.randn(2, 4, 4, dtype=torch.float64)), ValueError, "dtype"),
    (dict(class_weights=torch.randn(5, 3, device="meta")), ValueError, "class_weights on meta"),
    (dict(classes=torch.tensor([0, 1], device="meta")), ValueError, "classes on meta"),
]


def good_args():
    return dict(
        features=torch.randn(2, 3, 4, 4),
        class_weights=torch.randn(5, 3),
        classes=torch.tensor([0, 4]),
        class_bias=torch.randn(5),
        agnostic_logits=torch.randn(2, 4, 4),
    )
