// The start-up check of the GPU, before any weight is read: a driver that runs this build's CUDA, a visible
// GPU, and kernels compiled for its architecture. Each failure is one line saying what to do.
#pragma once

namespace kvs::cuda {

// Throws std::runtime_error unless device `ordinal` can run this build's kernels. When it can only through
// the driver's PTX JIT, prints one line saying so on stderr.
void checkCudaDevice(int ordinal);

}  // namespace kvs::cuda
