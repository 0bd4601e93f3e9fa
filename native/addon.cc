// Module init: loadEngine(opts, onProgress?) → Promise<NativeEngine>, cudaAvailable(), builtWithCuda().
// Loading (mmap, dummy fill, KV allocation) runs on a worker thread; progress is posted to the JS thread.
#include <napi.h>

#include <cmath>
#include <exception>
#include <string>

#include "engine-wrap.h"

namespace kvs_native {

namespace {

struct Progress {
  std::string stage;
  double fraction;
};

class LoadWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  LoadWorker(Napi::Env env, kvs::EngineOptions opts, Napi::Function onProgress)
      : Napi::AsyncProgressQueueWorker<Progress>(env, "kvserve.loadEngine"),
        deferred_(Napi::Promise::Deferred::New(env)), opts_(std::move(opts)) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      engine_ = kvs::Engine::load(opts_, [&](const std::string& stage, double f) {
        Progress p{stage, f};
        progress.Send(&p, 1);
      });
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown error while loading the model");
    }
  }

  void OnProgress(const Progress* data, size_t count) override {
    if (onProgress_.IsEmpty()) return;
    Napi::Env env = Env();
    for (size_t i = 0; i < count; ++i) {
      try {
        onProgress_.Call({Napi::String::New(env, data[i].stage), Napi::Number::New(env, data[i].fraction)});
      } catch (const Napi::Error&) {
        // a throwing progress callback must not break loading
      }
    }
  }

  void OnOK() override {
    deferred_.Resolve(EngineWrap::Wrap(Env(), std::shared_ptr<kvs::Engine>(std::move(engine_))));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  kvs::EngineOptions opts_;
  Napi::FunctionReference onProgress_;
  std::unique_ptr<kvs::Engine> engine_;
};

[[noreturn]] void badOption(Napi::Env env, const std::string& what) {
  throw Napi::TypeError::New(env, "loadEngine: " + what);
}

std::string str(const Napi::Object& o, const char* k, const std::string& fallback) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) badOption(o.Env(), std::string(k) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}
double num(const Napi::Object& o, const char* k, double fallback) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) badOption(o.Env(), std::string(k) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}
int integer(const Napi::Object& o, const char* k, int fallback) {
  double d = num(o, k, fallback);
  // Range first: converting NaN, Infinity or a double beyond int's range to int is undefined behaviour.
  if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != std::trunc(d))
    badOption(o.Env(), std::string(k) + " must be an integer, found " + std::to_string(d));
  return int(d);
}
bool boolean(const Napi::Object& o, const char* k, bool fallback) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) badOption(o.Env(), std::string(k) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

kvs::EngineOptions readOptions(const Napi::Object& o) {
  kvs::EngineOptions opts;
  opts.model = str(o, "model", "");
  opts.dummyWeights = boolean(o, "dummyWeights", false);
  opts.privateWeights = boolean(o, "privateWeights", false);
  opts.device = str(o, "device", opts.device);
  opts.dtype = str(o, "dtype", opts.dtype);
  opts.numThreads = integer(o, "numThreads", opts.numThreads);
  opts.blockSize = integer(o, "blockSize", opts.blockSize);
  opts.numKvBlocks = integer(o, "numKvBlocks", opts.numKvBlocks);
  opts.kvCacheBytes = num(o, "kvCacheBytes", opts.kvCacheBytes);
  opts.gpuMemoryUtilization = num(o, "gpuMemoryUtilization", opts.gpuMemoryUtilization);
  opts.maxNumBatchedTokens = integer(o, "maxNumBatchedTokens", opts.maxNumBatchedTokens);
  opts.maxNumSeqs = integer(o, "maxNumSeqs", opts.maxNumSeqs);
  opts.maxModelLen = integer(o, "maxModelLen", opts.maxModelLen);
  opts.batchInvariant = boolean(o, "batchInvariant", false);
  double seed = num(o, "seed", 0);
  if (!(seed >= 0 && seed <= 9007199254740991.0) || seed != std::trunc(seed))  // a safe integer, never NaN
    badOption(o.Env(), "seed must be a non-negative integer");
  opts.seed = uint64_t(seed);
  return opts;
}

Napi::Value LoadEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = Napi::Promise::Deferred::New(env);
  try {
    if (info.Length() < 1 || !info[0].IsObject()) badOption(env, "expected an options object");
    kvs::EngineOptions opts = readOptions(info[0].As<Napi::Object>());
    Napi::Function onProgress;
    if (info.Length() >= 2 && !info[1].IsUndefined()) {
      if (!info[1].IsFunction()) badOption(env, "onProgress must be a function");
      onProgress = info[1].As<Napi::Function>();
    }
    auto* worker = new LoadWorker(env, std::move(opts), onProgress);
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
    return deferred.Promise();
  }
}

Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), kvs::Engine::cudaAvailable());
}

Napi::Value BuiltWithCuda(const Napi::CallbackInfo& info) {
#ifdef KVSERVE_WITH_CUDA
  return Napi::Boolean::New(info.Env(), true);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  EngineWrap::Init(env);
  exports.Set("loadEngine", Napi::Function::New(env, LoadEngine, "loadEngine"));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable, "cudaAvailable"));
  exports.Set("builtWithCuda", Napi::Function::New(env, BuiltWithCuda, "builtWithCuda"));
  return exports;
}

}  // namespace kvs_native

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return kvs_native::Init(env, exports); }

NODE_API_MODULE(kvserve, InitAddon)
