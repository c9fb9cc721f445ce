"""Python faces of the native ops: argument checks and fake kernels (autograd is in C++,
csrc/ops/autograd/)."""
