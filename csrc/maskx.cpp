// The maskx operator library. Each op's schema lives in csrc/ops/<op>.cpp as a
// TORCH_LIBRARY_FRAGMENT; its kernels in csrc/ops/{cpu,cuda}/<op>_kernel.*. The module
// itself only holds the controls of the CPU output cache (ops/cpu/output_cache.h).
#include <Python.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <exception>

#include "ops/cpu/output_cache.h"

namespace {

// Runs f, turning a C++ exception into a Python one (none may cross the C API).
template <typename F>
PyObject* guarded(const F& f) {
  try {
    return f();
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    return nullptr;
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

PyObject* set_cpu_cache_limit(PyObject*, PyObject* arg) {
  const long long bytes = PyLong_AsLongLong(arg);
  if (bytes == -1 && PyErr_Occurred()) {
    return nullptr;
  }
  return guarded([&] { return PyLong_FromLongLong(maskx::cpu::set_output_cache_limit(bytes)); });
}

PyObject* cpu_cache_limit(PyObject*, PyObject*) {
  return guarded([] { return PyLong_FromLongLong(maskx::cpu::output_cache_limit()); });
}

PyObject* cpu_cache_bytes(PyObject*, PyObject*) {
  return guarded([] { return PyLong_FromLongLong(maskx::cpu::output_cache_bytes()); });
}

PyObject* empty_cpu_cache(PyObject*, PyObject*) {
  return guarded([] {
    maskx::cpu::empty_output_cache();
    Py_RETURN_NONE;
  });
}

PyMethodDef methods[] = {
    {"set_cpu_cache_limit",
     set_cpu_cache_limit,
     METH_O,
     "Sets the CPU output cache's limit in bytes; returns the previous one."},
    {"cpu_cache_limit", cpu_cache_limit, METH_NOARGS, "The CPU output cache's limit in bytes."},
    {"cpu_cache_bytes", cpu_cache_bytes, METH_NOARGS, "Bytes of freed outputs the CPU output cache holds."},
    {"empty_cpu_cache", empty_cpu_cache, METH_NOARGS, "Returns the CPU output cache's blocks to the system."},
    {nullptr, nullptr, 0, nullptr},
};

} // namespace

// Importing maskx_kernels._C runs the static registrations below and in every op file.
extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C", // name
      "maskx native kernels, registered as torch.ops.maskx.*",
      -1, // no per-module state
      methods,
  };
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(maskx, m) {}
