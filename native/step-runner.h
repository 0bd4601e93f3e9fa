// The thread that runs one engine's steps. Waking a sleeping thread costs ~20 µs on this kind of VM (an IPI
// per futex wake), which is a fifth of a small model's step; so after a step the thread spins for a short
// while (longer than Node needs to turn a result into the next batch) before it sleeps. Results go back to
// the JS thread through a thread-safe function, which is ref'ed only while a step is in flight so an idle
// engine does not keep the process alive.
#pragma once
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engines/batch_check.h"
#include "engines/engine.h"
#include "js-batch.h"

namespace kvs_native {

class EngineWrap;

struct StepJob {
  explicit StepJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise::Deferred deferred;
  std::unique_ptr<JsBatch> batch;  // borrowed typed arrays, referenced until the job is destroyed (JS thread)
  EngineWrap* wrap = nullptr;      // Ref'ed while the job lives
  kvs::StepResult result;
  std::string error;               // non-empty: the step failed
  std::vector<kvs::SeqFault> faults;  // the sequences the batch check pinned it on (empty: the whole step)
  double nativeMs = 0;             // the step on this runner's thread, from taking it up to its result
};

class StepRunner {
 public:
  StepRunner(Napi::Env env, std::shared_ptr<kvs::Engine> engine);
  ~StepRunner();  // stops the thread and joins it

  // JS thread. Starts the job; its promise settles on the JS thread when the step is done.
  void submit(Napi::Env env, std::unique_ptr<StepJob> job);
  // JS thread. Lets the thread exit (after the job in flight, if any) and drops this runner's engine.
  void stop();

 private:
  static void complete(Napi::Env env, Napi::Function, StepRunner* self, StepJob* job);
  void loop();
  StepJob* waitForJob();

  std::shared_ptr<kvs::Engine> engine_;
  Napi::TypedThreadSafeFunction<StepRunner, StepJob, &StepRunner::complete> done_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<StepJob*> pending_{nullptr};
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace kvs_native
