"""The installed package imports on its own and registers every op."""
import subprocess
import sys

OPS = [
    "roi_align",
    "_roi_align_backward",
    "multi_scale_roi_align",
    "_multi_scale_roi_align_backward",
    "nms",
    "batched_nms",
    "multiclass_nms",
    "transfer_mlp",
    "per_class_mask_logits",
    "per_class_mask_loss",
    "paste_masks",
    "paste_masks_rle",
]


def test_import_in_a_fresh_interpreter_registers_every_op():
    # A fresh interpreter, so nothing has imported torch before maskx_kernels.
    code = (
        "import sys, maskx_kernels, torch; "
        "print(' '.join(op for op in sys.argv[1:] if not hasattr(torch.ops.maskx, op)))"
    )
    result = subprocess.run([sys.executable, "-c", code, *OPS], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], f"ops not registered: {result.stdout}"


def test_native_error_messages_that_print_numbers_raise():
    """A C++ argument check whose message prints numbers raises ValueError. An extension
    linked with a private, static copy of libstdc++ crashes here instead: the copy formats
    numbers through the locale of torch's shared copy with facet ids of its own (setup.py
    links the shared library explicitly to prevent it). A fresh interpreter, so that a
    crash fails this test instead of ending the test run."""
    code = (
        "import torch, maskx_kernels\n"
        "x = torch.randn(2, 3, 5, 5)\n"
        "rois = torch.tensor([[0.0, 0.5, 0.5, 3.0, 3.5]])\n"
        "try:\n"
        "    torch.ops.maskx.roi_align(x, rois, 1.0, 0, 2, 2, False)\n"
        "except ValueError as e:\n"
        "    print(str(e).splitlines()[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-2000:]}"
    assert result.stdout.startswith("roi_align: output size must be positive, got (0, 2)"), result.stdout
