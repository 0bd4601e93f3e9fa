#include "step-runner.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>

#include "engine-wrap.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KVS_PAUSE() _mm_pause()
#else
#define KVS_PAUSE() std::this_thread::yield()
#endif

namespace kvs_native {

namespace {

constexpr auto kSpin = std::chrono::microseconds(300);

template <typename TA, typename V>
TA copyToTyped(Napi::Env env, const std::vector<V>& v) {
  TA a = TA::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(V));
  return a;
}

}  // namespace

StepRunner::StepRunner(Napi::Env env, std::shared_ptr<kvs::Engine> engine) : engine_(std::move(engine)) {
  done_ = decltype(done_)::New(env, "kvserve.step", 0, 1, this);
  done_.Unref(env);
  thread_ = std::thread([this] { loop(); });
}

StepRunner::~StepRunner() {
  stop_.store(true);
  { std::lock_guard<std::mutex> lock(mutex_); }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StepRunner::stop() {
  stop_.store(true);
  { std::lock_guard<std::mutex> lock(mutex_); }
  wake_.notify_all();
}

void StepRunner::submit(Napi::Env env, std::unique_ptr<StepJob> job) {
  done_.Ref(env);
  pending_.store(job.release(), std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst)) {
    { std::lock_guard<std::mutex> lock(mutex_); }  // the sleeper is waiting (and gets notified) or sees pending_
    wake_.notify_one();
  }
}

StepJob* StepRunner::waitForJob() {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (StepJob* job = pending_.exchange(nullptr, std::memory_order_acquire)) return job;
    if (stop_.load(std::memory_order_relaxed)) return nullptr;
    if ((i & 63) == 0 && std::chrono::steady_clock::now() > until) break;
    KVS_PAUSE();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  sleeping_.store(true, std::memory_order_seq_cst);
  wake_.wait(lock, [&] { return pending_.load(std::memory_order_seq_cst) != nullptr || stop_.load(); });
  sleeping_.store(false, std::memory_order_relaxed);
  return pending_.exchange(nullptr, std::memory_order_acquire);
}

void StepRunner::loop() {
  for (;;) {
    StepJob* job = waitForJob();
    if (!job) {
      if (stop_.load()) break;
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    try {
      engine_->step(job->batch->batch(), job->result);
    } catch (const kvs::BatchError& e) {
      job->error = e.what();
      job->faults = e.faults;
    } catch (const std::exception& e) {
      job->error = e.what();
    } catch (...) {
      job->error = "unknown error in the native step";
    }
    job->nativeMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    // Fails only when the environment is being torn down; the job is then left to the process exit.
    done_.NonBlockingCall(job);
  }
  engine_.reset();
  done_.Release();
}

void StepRunner::complete(Napi::Env env, Napi::Function, StepRunner* self, StepJob* job) {
  if (!env) return;  // tearing down: nothing can be settled any more
  std::unique_ptr<StepJob> owned(job);
  self->done_.Unref(env);
  job->wrap->stepDone();
  job->wrap->Unref();
  if (!job->error.empty()) {
    Napi::Error err = Napi::Error::New(env, job->error);
    if (!job->faults.empty()) {  // err.faults: [{seq, message}], the sequences to drop before a retry
      Napi::Array faults = Napi::Array::New(env, job->faults.size());
      for (size_t i = 0; i < job->faults.size(); ++i) {
        Napi::Object f = Napi::Object::New(env);
        f.Set("seq", job->faults[i].seq);
        f.Set("message", job->faults[i].message);
        faults.Set(uint32_t(i), f);
      }
      err.Set("faults", faults);
    }
    job->deferred.Reject(err.Value());
    return;
  }
  const kvs::StepResult& r = job->result;
  Napi::Object out = Napi::Object::New(env);
  out.Set("tokens", copyToTyped<Napi::Int32Array>(env, r.tokens));
  out.Set("logprobs", copyToTyped<Napi::Float32Array>(env, r.logprobs));
  out.Set("topLogprobs", Napi::Number::New(env, r.topLogprobs));
  out.Set("nativeMs", Napi::Number::New(env, job->nativeMs));
  if (r.deviceMs >= 0) out.Set("deviceMs", Napi::Number::New(env, r.deviceMs));
  out.Set("topIds", copyToTyped<Napi::Int32Array>(env, r.topIds));
  out.Set("topValues", copyToTyped<Napi::Float32Array>(env, r.topValues));
  if (job->batch->batch().returnLogits) out.Set("logits", copyToTyped<Napi::Float32Array>(env, r.logits));
  if (job->batch->batch().observeKvAbsMax) out.Set("kvAbsMax", copyToTyped<Napi::Float32Array>(env, r.kvAbsMax));
  if (std::any_of(r.rowFaults.begin(), r.rowFaults.end(), [](int32_t f) { return f != kvs::kRowOk; }))
    out.Set("rowFaults", copyToTyped<Napi::Int32Array>(env, r.rowFaults));
  job->deferred.Resolve(out);
}

}  // namespace kvs_native
