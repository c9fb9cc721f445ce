// Schema of maskx::per_class_mask_loss: mean binary cross-entropy with logits of the
// per-class mask logits over the RoIs marked valid, without materialising any logits.
// Kernels: ops/cpu/per_class_mask_loss_kernel.cpp, ops/cuda/per_class_mask_loss_kernel.cu.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  m.def(
      "per_class_mask_loss(Tensor features, Tensor class_weights, Tensor classes, Tensor targets, "
      "Tensor? class_bias, Tensor? agnostic_logits, Tensor? valid) -> Tensor");
  // Gradients with respect to features, class weights, class bias and agnostic logits.
  m.def(
      "_per_class_mask_loss_backward(Tensor grad, Tensor features, Tensor class_weights, Tensor classes, "
      "Tensor targets, Tensor? class_bias, Tensor? agnostic_logits, Tensor? valid) -> (Tensor, Tensor, Tensor, Tensor)");
}
