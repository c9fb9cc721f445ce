// The cache behind cpu::empty_output: a c10::Allocator whose blocks go back to a
// free list, not to the operating system, when the tensor that owns them dies.
#include "ops/cpu/output_cache.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#if defined(__linux__)
#include <pthread.h>
#include <sys/mman.h>
#endif

namespace maskx {
namespace cpu {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;
// Smaller outputs come from the default allocator, whose heap reuses them already.
constexpr size_t kMinCachedBytes = size_t(4) << 20;

struct Block {
  void* data;
  size_t bytes; // a multiple of kHugePage
};

int64_t limit_from_environment() {
  const char* mib = std::getenv("MASKX_CPU_CACHE_MB");
  if (mib == nullptr || *mib == '\0') {
    return int64_t(512) << 20;
  }
  char* end = nullptr;
  const long long value = std::strtoll(mib, &end, 10);
  TORCH_CHECK_VALUE(*end == '\0' && value >= 0, "MASKX_CPU_CACHE_MB must be a whole number of MiB, got '", mib, "'");
  return static_cast<int64_t>(value) << 20;
}

#if defined(__linux__)
// kHugePage-aligned anonymous memory: map one huge page more than needed and unmap the
// unaligned ends.
Block map_block(size_t bytes) {
  const size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  TORCH_CHECK(raw != MAP_FAILED, "maskx: out of memory allocating ", size, " bytes");
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (begin + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > begin) {
    munmap(raw, aligned - begin);
  }
  if (aligned + size < begin + size + kHugePage) {
    munmap(reinterpret_cast<void*>(aligned + size), begin + size + kHugePage - aligned - size);
  }
  void* data = reinterpret_cast<void*>(aligned);
#if defined(MADV_HUGEPAGE)
  madvise(data, size, MADV_HUGEPAGE); // a hint: where the kernel declines, pages stay small
#endif
  return {data, size};
}

void unmap_block(const Block& b) {
  munmap(b.data, b.bytes);
}
#endif

class OutputCache final : public c10::Allocator {
 public:
  // Never destroyed: outputs may outlive static destructors at interpreter exit.
  static OutputCache& instance() {
    static OutputCache* cache = new OutputCache();
    return *cache;
  }

  OutputCache() : limit_(limit_from_environment()) {
#if defined(__linux__)
    // A fork while another thread is inside the cache (an op or the autograd engine runs
    // without the GIL) would leave the child a locked mutex that no thread will release:
    // its first cached allocation would hang. Hold the lock across fork() instead, as
    // glibc does for malloc's.
    pthread_atfork(&OutputCache::lock_for_fork, &OutputCache::unlock_after_fork, &OutputCache::unlock_after_fork);
#endif
  }

  c10::DataPtr allocate(size_t bytes) override {
#if defined(__linux__)
    if (bytes >= kMinCachedBytes) {
      Block* block = take(bytes);
      if (block == nullptr) {
        block = new Block(map_block(bytes));
      }
      return {block->data, block, &OutputCache::give_back, c10::Device(c10::DeviceType::CPU)};
    }
#endif
    return c10::GetCPUAllocator()->allocate(bytes);
  }

  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }

  int64_t set_limit(int64_t bytes) {
    TORCH_CHECK_VALUE(bytes >= 0, "the CPU output cache limit must be >= 0 bytes, got ", bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t previous = limit_;
    limit_ = bytes;
    trim();
    return previous;
  }

  int64_t limit() {
    std::lock_guard<std::mutex> lock(mutex_);
    return limit_;
  }

  int64_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int64_t>(cached_bytes_);
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_oldest(free_.size());
  }

 private:
  // The smallest cached block that holds `bytes` without wasting more than half of it.
  Block* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if ((*it)->bytes >= bytes && 2 * bytes >= (*it)->bytes &&
          (best == free_.end() || (*it)->bytes < (*best)->bytes)) {
        best = it;
      }
    }
    if (best == free_.end()) {
      return nullptr;
    }
    Block* block = *best;
    free_.erase(best);
    cached_bytes_ -= block->bytes;
    return block;
  }

  static void give_back(void* context) {
    instance().put(static_cast<Block*>(context));
  }

  static void lock_for_fork() {
    instance().mutex_.lock();
  }
  static void unlock_after_fork() {
    instance().mutex_.unlock();
  }

  void put(Block* block) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(block);
    cached_bytes_ += block->bytes;
    trim();
  }

  // Drops the oldest blocks until the cache is within its limit.
  void trim() {
    size_t n = 0;
    size_t bytes = cached_bytes_;
    while (bytes > static_cast<size_t>(limit_)) {
      bytes -= free_[n++]->bytes;
    }
    release_oldest(n);
  }

  void release_oldest(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      Block* block = free_.front();
      free_.pop_front();
      cached_bytes_ -= block->bytes;
#if defined(__linux__)
      unmap_block(*block);
#endif
      delete block;
    }
  }

  std::mutex mutex_;
  std::deque<Block*> free_; // oldest first
  size_t cached_bytes_ = 0;
  int64_t limit_;
};

} // namespace

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options, at::MemoryFormat memory_format) {
  TORCH_INTERNAL_ASSERT(options.device().is_cpu());
  return at::detail::empty_generic(
      sizes,
      &OutputCache::instance(),
      c10::DispatchKeySet(c10::DispatchKey::CPU),
      c10::typeMetaToScalarType(options.dtype()),
      memory_format);
}

int64_t set_output_cache_limit(int64_t bytes) {
  return OutputCache::instance().set_limit(bytes);
}

int64_t output_cache_limit() {
  return OutputCache::instance().limit();
}

int64_t output_cache_bytes() {
  return OutputCache::instance().cached_bytes();
}

void empty_output_cache() {
  OutputCache::instance().clear();
}

} // namespace cpu
} // namespace maskx
