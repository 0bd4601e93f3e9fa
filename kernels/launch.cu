// Whether the forward pass's kernels use programmatic dependent launch (common.cuh). Off until the backend
// has checked the device (compute capability 9.0 or newer) and KVSERVE_CUDA_PDL is not 0.
#include <atomic>

#include "common.cuh"

namespace kvsk {
namespace {
std::atomic<bool> programmaticLaunch{false};
}
bool pdlEnabled() { return programmaticLaunch.load(std::memory_order_relaxed); }
}  // namespace kvsk

extern "C" void kvsk_set_programmatic_launch(int on) { kvsk::programmaticLaunch.store(on != 0, std::memory_order_relaxed); }
