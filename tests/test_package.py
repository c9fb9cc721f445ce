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
