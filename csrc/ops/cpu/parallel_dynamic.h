#pragma once
// Dynamic scheduling on ATen's intra-op threads. at::parallel_for splits a range into
// one fixed block per thread; when one thread is slowed (a shared machine, uneven
// items), the others go idle at the end. Here each thread takes the next item from a
// shared counter as it finishes the last one, so all finish together.
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace maskx {
namespace cpu {

// Calls body(item, scratch) for every item in [0, n), each item once, with one Scratch
// (default-constructed) per thread: per-thread buffers reused across its items.
template <typename Scratch, typename Body>
void parallel_for_dynamic(int64_t n, const Body& body) {
  if (n <= 0)
    return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), n);
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    Scratch scratch;
    for (int64_t i = next++; i < n; i = next++)
      body(i, scratch);
  });
}

} // namespace cpu
} // namespace maskx
