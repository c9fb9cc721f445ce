// Schema of maskx::transfer_mlp, Mask^X R-CNN's weight transfer function T: a 1- to
// 3-layer MLP applied to every class row, LeakyReLU(negative_slope >= 0) after every
// layer but the last. Kernels: ops/cpu/transfer_mlp_kernel.cpp and
// ops/cuda/transfer_mlp_kernel.cpp, over the layer loop of ops/transfer_mlp_layers.cpp.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(maskx, m) {
  // Also returns the hidden layers' activations, which the backward pass reuses.
  m.def("transfer_mlp(Tensor x, Tensor[] weights, Tensor[] biases, float negative_slope) -> (Tensor, Tensor[])");
  // Returns the gradients of the weights and biases, and the gradient of the first
  // layer's pre-activation (grad_x = it @ weights[0], only formed when x needs it).
  m.def(
      "_transfer_mlp_backward(Tensor grad, Tensor x, Tensor[] hidden, Tensor[] weights, float negative_slope) "
      "-> (Tensor[], Tensor[], Tensor)");
}
