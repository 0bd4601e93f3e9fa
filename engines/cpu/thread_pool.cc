// Protocol: the caller publishes the job (job_, then generation_++), runs chunks itself, closes the job
// (job_ = null) and waits until active_ == 0. A worker increments active_ *before* loading job_, so it
// either sees null (and touches nothing) or the caller sees it active and waits for it (seq_cst on both).
#include "thread_pool.h"

#include <sched.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KVS_PAUSE() _mm_pause()
#else
#define KVS_PAUSE() std::this_thread::yield()
#endif

namespace kvs {

namespace {
// ~30-60 µs of spinning before a worker sleeps: longer than the gap between two loops of one step,
// much shorter than the gap between steps of an idle server.
constexpr int kSpinIterations = 4000;
}  // namespace

ThreadPool::ThreadPool(int numThreads) {
  if (numThreads <= 0) numThreads = static_cast<int>(std::thread::hardware_concurrency());
  numThreads_ = numThreads < 1 ? 1 : numThreads;
  for (int i = 1; i < numThreads_; ++i) threads_.emplace_back([this] { workerLoop(); });
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

void ThreadPool::runChunks(Job& job) {
  for (;;) {
    const int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.chunks) return;
    const int64_t lo = c * job.grain;
    const int64_t hi = lo + job.grain < job.n ? lo + job.grain : job.n;
    job.call(job.ctx, lo, hi);
  }
}

void ThreadPool::dispatch(Job& job) {
  idle_.store(false, std::memory_order_relaxed);
  job_.store(&job, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(mutex_);  // a sleeper is either waiting (and gets notified) or sees the new generation
    wake_.notify_all();
  }
  runChunks(job);
  job_.store(nullptr, std::memory_order_seq_cst);
  for (int spin = 0; active_.load(std::memory_order_seq_cst) != 0; ++spin) {
    if (spin < 2000) KVS_PAUSE();
    else sched_yield();  // a worker holding a chunk was descheduled: give it the core
  }
}

void ThreadPool::workerLoop() {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations && !idle_.load(std::memory_order_relaxed); ++spin) {
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
    active_.fetch_add(1, std::memory_order_seq_cst);
    if (Job* job = job_.load(std::memory_order_seq_cst)) runChunks(*job);
    active_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

}  // namespace kvs
