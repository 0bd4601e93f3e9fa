// A persistent pool for fork-join loops. The calling thread is worker 0; numThreads-1 threads wait for
// jobs by spinning briefly (a decode step issues hundreds of tiny loops) and then sleeping, so an idle
// server burns no CPU. One job runs at a time: run() is not reentrant and not thread-safe.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace kvs {

class ThreadPool {
 public:
  explicit ThreadPool(int numThreads);  // <= 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return numThreads_; }

  // Calls fn(worker) once on each of the size() workers and returns when all are done.
  template <typename F>
  void run(F&& fn) {
    if (numThreads_ == 1) { fn(0); return; }
    dispatch(&invoke<std::remove_reference_t<F>>, &fn);
  }

  // Splits [0, n) into size() contiguous ranges, each a multiple of `grain` (except the last), and calls
  // fn(begin, end) for the non-empty ones. Runs inline when n is at most `grain` or the pool has one thread.
  template <typename F>
  void parallelFor(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = (n + grain - 1) / grain;
    if (numThreads_ == 1 || chunks == 1) { fn(int64_t(0), n); return; }
    int workers = static_cast<int>(chunks < numThreads_ ? chunks : numThreads_);
    run([&](int w) {
      if (w >= workers) return;
      int64_t lo = chunks * w / workers * grain, hi = chunks * (w + 1) / workers * grain;
      if (hi > n) hi = n;
      if (lo < hi) fn(lo, hi);
    });
  }

 private:
  template <typename F>
  static void invoke(void* ctx, int worker) { (*static_cast<F*>(ctx))(worker); }
  void dispatch(void (*call)(void*, int), void* ctx);
  void workerLoop(int index);

  int numThreads_;
  std::vector<std::thread> threads_;
  void (*call_)(void*, int) = nullptr;
  void* ctx_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace kvs
