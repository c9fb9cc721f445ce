#pragma once
// Big CPU outputs are written once, right after allocation. Backing them with
// transparent huge pages (Linux, madvise mode) turns ~512 first-touch page faults per
// 2 MiB into one, which for a 50 MB output is most of a fast kernel's time.
#include <ATen/ATen.h>

#include <cstdint>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace maskx {
namespace cpu {

inline void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t(2) << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHugePage - 1);
  if (end > begin) {
    // Only a hint: where the kernel declines, the memory works as before.
    madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#endif
}

// at::empty, advised to use huge pages when large.
inline at::Tensor empty_huge(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
  advise_huge_pages(t.data_ptr(), t.nbytes());
  return t;
}

}  // namespace cpu
}  // namespace maskx
