#pragma once
// Argument checks shared by every op, worded as the Python faces' helpers
// (maskx_kernels/_validation.py) so that an error reads the same whichever side raises
// it: "<op>: <name> must be ..., got ...". Failures raise ValueError in Python.
//
// Where each kind of check lives: the C++ entry points check tensors (shapes, dtypes,
// devices) and scalar arguments on every call, before any kernel runs; the Python faces
// keep the same checks only for the fake kernels (torch.compile never reaches C++) and
// the checks of tensor values on a GPU (one synchronisation, skipped while tracing). CPU
// kernels check values as they read them.
//
// The messages are built only on failure (TORCH_CHECK_VALUE formats lazily), so passing
// checks cost a comparison each.
#include <ATen/ATen.h>

namespace maskx {
namespace checks {

// "<op>: <name> must be a Tensor<expected><detail...>, got shape [...]", e.g. expected
// "[N, 4]" and detail " with N = ", 3, " (one box per mask)".
template <typename... Detail>
inline void check_shape(
    bool ok,
    const char* op,
    const char* name,
    const at::Tensor& t,
    const char* expected,
    const Detail&... detail) {
  TORCH_CHECK_VALUE(ok, op, ": ", name, " must be a Tensor", expected, detail..., ", got shape ", t.sizes());
}

inline void check_float(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(
      at::isFloatingType(t.scalar_type()), op, ": ", name, " must be a floating tensor, got ", t.scalar_type());
}

// `dtype_name` as Python spells it ("int64", "bool").
inline void check_dtype(
    const char* op,
    const char* name,
    const at::Tensor& t,
    at::ScalarType dtype,
    const char* dtype_name) {
  TORCH_CHECK_VALUE(t.scalar_type() == dtype, op, ": ", name, " must be ", dtype_name, ", got ", t.scalar_type());
}

inline void check_same_device(
    const char* op,
    const char* name,
    const at::Tensor& t,
    const char* like_name,
    const at::Tensor& like) {
  TORCH_CHECK_VALUE(
      t.device() == like.device(),
      op,
      ": tensors must share one device, got ",
      name,
      " on ",
      t.device(),
      ", ",
      like_name,
      " on ",
      like.device());
}

// The dtype and device of `like`.
inline void check_like(
    const char* op,
    const char* name,
    const at::Tensor& t,
    const char* like_name,
    const at::Tensor& like) {
  TORCH_CHECK_VALUE(
      t.scalar_type() == like.scalar_type(),
      op,
      ": ",
      name,
      " must have the dtype of ",
      like_name,
      " (",
      like.scalar_type(),
      "), got ",
      t.scalar_type());
  check_same_device(op, name, t, like_name, like);
}

inline void check_threshold(const char* op, const char* name, double value) {
  TORCH_CHECK_VALUE(value >= 0.0 && value <= 1.0, op, ": ", name, " must be in [0, 1], got ", value);
}

} // namespace checks
} // namespace maskx
