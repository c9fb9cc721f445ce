"""Python faces of the native ops: argument checks, fake kernels and autograd."""
