// Owning device and pinned-host allocations of the CUDA backend (RAII, grow-only where noted).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "cuda_check.h"

namespace kvs::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { resize(bytes); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) { release(); ptr_ = std::exchange(o.ptr_, nullptr); bytes_ = std::exchange(o.bytes_, 0); }
    return *this;
  }
  // Reallocates (contents lost) when bytes exceeds the capacity.
  void resize(size_t bytes) {
    if (bytes <= bytes_ && ptr_) return;
    release();
    KVS_CUDA_CHECK(cudaMalloc(&ptr_, bytes ? bytes : 16));
    bytes_ = bytes;
  }
  template <typename T = void> T* get() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void release() { if (ptr_) cudaFree(ptr_); ptr_ = nullptr; bytes_ = 0; }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { if (ptr_) cudaFreeHost(ptr_); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void resize(size_t bytes) {
    if (bytes <= bytes_ && ptr_) return;
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    KVS_CUDA_CHECK(cudaMallocHost(&ptr_, bytes ? bytes : 16));
    bytes_ = bytes;
  }
  template <typename T = void> T* get() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace kvs::cuda
