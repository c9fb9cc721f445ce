#pragma once
// Streaming (non-temporal) copies for outputs that a kernel writes once and does not
// read back: whole cache lines go to memory without first being read for ownership, and
// the caches stay with the inputs. x86 AVX2 builds only; elsewhere a plain copy.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#if defined(CPU_CAPABILITY_AVX2)
#include <immintrin.h>
#endif

namespace maskx {
namespace cpu {

// dst[0, n) = src[0, n). Streams when dst is 32-byte aligned (float only); call
// stream_fence() before other threads read dst.
template <typename T>
inline void stream_copy(const T* src, int64_t n, T* dst) {
#if defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<T, float>) {
    if (reinterpret_cast<uintptr_t>(dst) % 32 == 0) {
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
      for (; i < n; ++i) dst[i] = src[i];
      return;
    }
  }
#endif
  std::copy(src, src + n, dst);
}

// Orders this thread's streaming stores before its later stores (and so before the
// synchronisation that hands the output to another thread).
inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

}  // namespace cpu
}  // namespace maskx
