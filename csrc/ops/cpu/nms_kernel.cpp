// CPU kernels of maskx::nms and maskx::batched_nms: the entry points of
// nms_entry_points.h over the greedy engine (nms_greedy.h), which groups boxes by class
// for batched_nms and checks that coordinates and scores are finite.
#include <torch/library.h>

#include "ops/cpu/nms_greedy.h"
#include "ops/nms_entry_points.h"

namespace maskx {
namespace nms {

TORCH_LIBRARY_IMPL(maskx, CPU, m) {
  EntryPoints<&nms_cpu>::register_kernels(m);
}

} // namespace nms
} // namespace maskx
