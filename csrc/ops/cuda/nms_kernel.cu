// CUDA kernels of maskx::nms and maskx::batched_nms: the entry points of
// nms_entry_points.h over bitmask NMS (nms_bitmask.cuh), where a box only suppresses
// boxes with its class id, compared in the mask kernel (no coordinate offsets). Values
// (finite coordinates and scores) are checked by the Python faces before the call.
#include <torch/library.h>

#include "ops/cuda/nms_bitmask.cuh"
#include "ops/nms_entry_points.h"

namespace maskx {
namespace nms {

TORCH_LIBRARY_IMPL(maskx, CUDA, m) {
  EntryPoints<&nms_cuda>::register_kernels(m);
}

} // namespace nms
} // namespace maskx
