"""Triton kernels of the maskx ops, each with a plain launcher. On a machine without a
GPU they run on CPU tensors through the Triton interpreter (TRITON_INTERPRET=1)."""
from maskx_kernels.triton.per_class_mask_logits import per_class_mask_logits_backward_triton, per_class_mask_logits_triton
from maskx_kernels.triton.per_class_mask_loss import per_class_mask_loss_backward_triton, per_class_mask_loss_triton
from maskx_kernels.triton.transfer_mlp import transfer_mlp_triton

__all__ = [
    "per_class_mask_logits_backward_triton",
    "per_class_mask_logits_triton",
    "per_class_mask_loss_backward_triton",
    "per_class_mask_loss_triton",
    "transfer_mlp_triton",
]
