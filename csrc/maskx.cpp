// The maskx operator library. Each op's schema lives in csrc/ops/<op>.cpp as a
// TORCH_LIBRARY_FRAGMENT; its kernels in csrc/ops/{cpu,cuda}/<op>_kernel.*.
#include <Python.h>
#include <torch/library.h>

// Importing maskx_kernels._C runs the static registrations below and in every op file.
extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",  // name
      "maskx native kernels, registered as torch.ops.maskx.*",
      -1,  // no per-module state
      nullptr,  // methods: everything is reached through torch.ops
  };
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(maskx, m) {}
