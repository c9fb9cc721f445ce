// Schema of maskx::per_class_mask_logits: RoI r's mask logits from the weight row of its
// own class only (Mask R-CNN's predictor computes every class, then picks one).
// Kernels: ops/cpu/per_class_mask_logits_kernel.cpp, ops/cuda/per_class_mask_logits_kernel.cu.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  m.def(
      "per_class_mask_logits(Tensor features, Tensor class_weights, Tensor classes, Tensor? class_bias, "
      "Tensor? agnostic_logits, bool sigmoid) -> Tensor");
  // Gradients of the logits (not of probabilities) with respect to features, class
  // weights and class bias; the agnostic logits' gradient is `grad` itself.
  m.def(
      "_per_class_mask_logits_backward(Tensor grad, Tensor features, Tensor class_weights, Tensor classes) "
      "-> (Tensor, Tensor, Tensor)");
}
