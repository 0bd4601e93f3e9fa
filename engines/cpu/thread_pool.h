// A persistent pool for fork-join loops whose chunks are claimed dynamically: the calling thread works too,
// and a worker that the OS has descheduled (this machine's cores are shared with the Node event loop and
// other processes) simply finds no chunk left, instead of stalling the loop. Workers spin briefly between
// loops (a decode step issues hundreds of tiny ones), then sleep, so an idle server burns no CPU.
// One loop at a time: parallelFor() is neither reentrant nor thread-safe.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace kvs {

class ThreadPool {
 public:
  explicit ThreadPool(int numThreads);  // <= 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return numThreads_; }

  // Tells spinning workers to sleep now rather than after their spin budget: call at the end of a step,
  // when the next loop is at least a Node round trip away and a spinning core would only slow Node down.
  void idle() { idle_.store(true, std::memory_order_relaxed); }

  // Calls fn(begin, end) over [0, n) in chunks of `grain` (the last may be shorter), on any threads, in any
  // order. Callers must make each element's result independent of the chunking. Inline when one chunk.
  template <typename F>
  void parallelFor(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    Job job;
    job.n = n;
    job.grain = grain;
    job.chunks = (n + grain - 1) / grain;
    if (numThreads_ == 1 || job.chunks == 1) { fn(int64_t(0), n); return; }
    job.ctx = &fn;
    job.call = [](void* ctx, int64_t lo, int64_t hi) { (*static_cast<std::remove_reference_t<F>*>(ctx))(lo, hi); };
    dispatch(job);
  }

 private:
  struct Job {
    void (*call)(void*, int64_t, int64_t) = nullptr;
    void* ctx = nullptr;
    int64_t n = 0, grain = 1, chunks = 0;
    std::atomic<int64_t> next{0};
  };
  static void runChunks(Job& job);
  void dispatch(Job& job);
  void workerLoop();

  int numThreads_;
  std::vector<std::thread> threads_;
  std::atomic<Job*> job_{nullptr};    // the open loop; null when none
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> active_{0};        // workers that may be touching *job_
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> idle_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace kvs
