// Progress reports of the load and build workers, posted from the worker thread to the JS thread, and the
// worker base class both share.
#pragma once
#include <napi.h>

#include <exception>
#include <functional>
#include <string>

namespace kvs_native {

struct Progress {
  std::string stage;
  double fraction;
};

// Calls onProgress(stage, fraction) for each queued report; a throwing callback must not break the work.
inline void callProgress(Napi::Env env, Napi::FunctionReference& fn, const Progress* data, size_t count) {
  if (fn.IsEmpty()) return;
  for (size_t i = 0; i < count; ++i) {
    try {
      fn.Call({Napi::String::New(env, data[i].stage), Napi::Number::New(env, data[i].fraction)});
    } catch (const Napi::Error&) {
    }
  }
}

// The load and build workers: run() does the work on the worker thread, reporting (stage, fraction) as it
// goes; an exception rejects the promise with its message ("unknown error while <what>" otherwise). A
// subclass resolves deferred_ in OnOK.
class ProgressWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  using Report = std::function<void(const std::string& stage, double fraction)>;

  ProgressWorker(Napi::Env env, const char* name, Napi::Function onProgress, std::string what)
      : Napi::AsyncProgressQueueWorker<Progress>(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        what_(std::move(what)) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  virtual void run(const Report& report) = 0;

  void Execute(const ExecutionProgress& progress) final {
    try {
      run([&](const std::string& stage, double f) {
        Progress p{stage, f};
        progress.Send(&p, 1);
      });
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown error while " + what_);
    }
  }
  void OnProgress(const Progress* data, size_t count) final { callProgress(Env(), onProgress_, data, count); }
  void OnError(const Napi::Error& e) final { deferred_.Reject(e.Value()); }

  Napi::Promise::Deferred deferred_;

 private:
  std::string what_;
  Napi::FunctionReference onProgress_;
};

}  // namespace kvs_native
