// Host-to-device copies of many ranges at the speed of the bus rather than of one thread's page faults.
// A pageable cudaMemcpy from a mapped file runs on one thread, which takes the page faults and the copy into
// the driver's staging memory one after the other. Here several threads each fill two pinned staging
// buffers in turn (taking the faults on several cores) and queue each buffer's transfer on their own stream,
// so reading host memory overlaps the DMA.
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

namespace kvs::cuda {

struct HostToDevice {
  const void* src;  // host memory (a mapping, or anything readable)
  void* dst;        // device memory
  size_t bytes;
};

// Copies every range and returns once all of them are on the device (device 0). `threads` 0: one per core,
// at most 8 (KVSERVE_UPLOAD_THREADS=N overrides, for measurements). onBytes (may be empty) runs on the calling thread with the bytes copied since its last call.
void uploadStaged(const std::vector<HostToDevice>& ranges, const std::function<void(size_t)>& onBytes = {},
                  int threads = 0);

}  // namespace kvs::cuda
