#include "thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KVS_PAUSE() _mm_pause()
#else
#define KVS_PAUSE() std::this_thread::yield()
#endif

namespace kvs {

namespace {
// About 50-100 µs of spinning before a worker sleeps: longer than the gap between two loops of one step,
// much shorter than the gap between steps of an idle server.
constexpr int kSpinIterations = 20000;
}  // namespace

ThreadPool::ThreadPool(int numThreads) {
  if (numThreads <= 0) numThreads = static_cast<int>(std::thread::hardware_concurrency());
  numThreads_ = numThreads < 1 ? 1 : numThreads;
  for (int i = 1; i < numThreads_; ++i) threads_.emplace_back([this, i] { workerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::dispatch(void (*call)(void*, int), void* ctx) {
  call_ = call;
  ctx_ = ctx;
  pending_.store(numThreads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes call_/ctx_/pending_
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(mutex_);  // a sleeper is either waiting (and gets notified) or sees the new generation
    wake_.notify_all();
  }
  call(ctx, 0);
  while (pending_.load(std::memory_order_acquire) != 0) KVS_PAUSE();
}

void ThreadPool::workerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      KVS_PAUSE();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    call_(ctx_, index);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace kvs
