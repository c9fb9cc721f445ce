#pragma once
// Big CPU outputs (pooled features, input-sized gradients) are written once, right after
// allocation. Fresh memory for them costs a page fault and the kernel's zeroing of every
// page, which for a 50 MB output is a large part of a fast kernel's time. empty_output
// takes them from a bounded cache of blocks that earlier outputs freed (already mapped)
// or else maps fresh memory advised to use transparent huge pages (Linux).
#include <ATen/ATen.h>

#include <cstdint>

namespace maskx {
namespace cpu {

// at::empty(sizes, options) for a CPU output, contents undefined.
at::Tensor empty_output(
    at::IntArrayRef sizes,
    const at::TensorOptions& options,
    at::MemoryFormat memory_format = at::MemoryFormat::Contiguous);

// Most bytes the cache keeps when outputs are freed; returns the previous limit. The
// default is MASKX_CPU_CACHE_MB (MiB, 512 when unset); 0 turns the cache off.
int64_t set_output_cache_limit(int64_t bytes);
int64_t output_cache_limit();
// Bytes held by the cache now (freed outputs waiting to be reused).
int64_t output_cache_bytes();
// Returns every cached block to the operating system.
void empty_output_cache();

} // namespace cpu
} // namespace maskx
