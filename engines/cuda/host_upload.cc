#include "host_upload.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "cuda_check.h"
#include "device_buffer.h"

namespace kvs::cuda {

namespace {

constexpr size_t kChunk = size_t(16) << 20;  // bytes per staging buffer and per queued transfer

struct Piece {
  const char* src;
  char* dst;
  size_t bytes;
};

// Each worker: its own stream and two pinned buffers used in turn; before refilling one, it waits for that
// buffer's previous transfer (its event), so the other buffer's transfer runs while it copies.
void worker(const std::vector<Piece>& pieces, std::atomic<size_t>& next, std::atomic<size_t>& copied) {
  KVS_CUDA_CHECK(cudaSetDevice(0));
  cudaStream_t stream = nullptr;
  cudaEvent_t done[2] = {nullptr, nullptr};
  PinnedBuffer staging[2];
  try {
    KVS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    for (cudaEvent_t& e : done) KVS_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    for (PinnedBuffer& b : staging) b.resize(kChunk);
    size_t turn = 0;
    for (size_t i = next++; i < pieces.size(); i = next++, ++turn) {
      const Piece& p = pieces[i];
      const int b = static_cast<int>(turn % 2);
      if (turn >= 2) KVS_CUDA_CHECK(cudaEventSynchronize(done[b]));
      std::memcpy(staging[b].get(), p.src, p.bytes);
      KVS_CUDA_CHECK(cudaMemcpyAsync(p.dst, staging[b].get(), p.bytes, cudaMemcpyHostToDevice, stream));
      KVS_CUDA_CHECK(cudaEventRecord(done[b], stream));
      copied += p.bytes;
    }
    KVS_CUDA_CHECK(cudaStreamSynchronize(stream));
  } catch (...) {
    if (stream) cudaStreamSynchronize(stream);  // the staging buffers must outlive their transfers
    for (cudaEvent_t e : done) if (e) cudaEventDestroy(e);
    if (stream) cudaStreamDestroy(stream);
    throw;
  }
  for (cudaEvent_t e : done) cudaEventDestroy(e);
  cudaStreamDestroy(stream);
}

}  // namespace

void uploadStaged(const std::vector<HostToDevice>& ranges, const std::function<void(size_t)>& onBytes, int threads) {
  std::vector<Piece> pieces;
  size_t total = 0;
  for (const HostToDevice& r : ranges)
    for (size_t off = 0; off < r.bytes; off += kChunk)
      pieces.push_back({static_cast<const char*>(r.src) + off, static_cast<char*>(r.dst) + off, std::min(kChunk, r.bytes - off)});
  for (const Piece& p : pieces) total += p.bytes;
  const char* knob = std::getenv("KVSERVE_UPLOAD_THREADS");  // for measurements (test/gpu/bench-engine-load.ts)
  if (threads <= 0 && knob) threads = std::atoi(knob);
  if (threads <= 0) threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
  threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), std::max<size_t>(pieces.size(), 1)));

  std::atomic<size_t> next{0}, copied{0};
  std::atomic<int> running{threads};
  std::exception_ptr error;
  std::mutex errorMutex;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      try {
        worker(pieces, next, copied);
      } catch (...) {
        std::lock_guard<std::mutex> lock(errorMutex);
        if (!error) error = std::current_exception();
        next = pieces.size();  // the others stop after their current piece
      }
      --running;
    });
  size_t reported = 0;
  while (running > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const size_t now = copied;
    if (onBytes && now > reported) onBytes(now - reported);
    reported = now;
  }
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  if (onBytes && total > reported) onBytes(total - reported);
}

}  // namespace kvs::cuda
