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
      for (; i + 8 <= n; i += 8)
        _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
      for (; i < n; ++i)
        dst[i] = src[i];
      return;
    }
  }
#endif
  std::copy(src, src + n, dst);
}

// dst[0, bytes) = src[0, bytes), or zeros when src is null: whole 64-byte lines of dst
// are streamed, the partial lines at the ends get plain stores (so no line mixes the
// two; dst may have any alignment). Call stream_fence() before other threads read dst.
inline void stream_bytes(const void* src, int64_t bytes, void* dst) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  const uint8_t* s = static_cast<const uint8_t*>(src);
#if defined(CPU_CAPABILITY_AVX2)
  const int64_t head = std::min<int64_t>(bytes, (64 - reinterpret_cast<uintptr_t>(d) % 64) % 64);
  if (s) {
    std::copy(s, s + head, d);
  } else {
    std::fill(d, d + head, uint8_t(0));
  }
  int64_t i = head;
  const __m256i zero = _mm256_setzero_si256();
  for (; i + 64 <= bytes; i += 64) {
    __m256i lo = zero, hi = zero;
    if (s) {
      lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
      hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 32));
    }
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), lo);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i + 32), hi);
  }
  d += i;
  if (s)
    s += i;
  bytes -= i;
#endif
  if (s) {
    std::copy(s, s + bytes, d);
  } else {
    std::fill(d, d + bytes, uint8_t(0));
  }
}

// Orders this thread's streaming stores before its later stores (and so before the
// synchronisation that hands the output to another thread).
inline void stream_fence() {
#if defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

} // namespace cpu
} // namespace maskx
