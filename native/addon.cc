// Module init: loadEngine(opts, onProgress?) → Promise<NativeEngine>, buildEngine(opts, outDir, onProgress?)
// → Promise<BuildResult>, engineTarget(), cudaAvailable(), builtWithCuda().
// Loading (mmap, dummy fill, KV allocation) and building run on a worker thread; progress is posted to the JS
// thread.
#include <napi.h>

#include <exception>
#include <string>

#include "../engines/engine_target.h"
#include "build-worker.h"
#include "engine-wrap.h"
#include "js-options.h"
#include "progress.h"

namespace kvs_native {

namespace {

class LoadWorker : public ProgressWorker {
 public:
  LoadWorker(Napi::Env env, kvs::EngineOptions opts, Napi::Function onProgress)
      : ProgressWorker(env, "kvserve.loadEngine", onProgress, "loading the model"), opts_(std::move(opts)) {}

 protected:
  void run(const Report& report) override { engine_ = kvs::Engine::load(opts_, report); }
  void OnOK() override {
    deferred_.Resolve(EngineWrap::Wrap(Env(), std::shared_ptr<kvs::Engine>(std::move(engine_))));
  }

 private:
  kvs::EngineOptions opts_;
  std::unique_ptr<kvs::Engine> engine_;
};

Napi::Value LoadEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = Napi::Promise::Deferred::New(env);
  try {
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "loadEngine: expected an options object");
    kvs::EngineOptions opts = readEngineOptions(info[0].As<Napi::Object>());
    Napi::Function onProgress;
    if (info.Length() >= 2 && !info[1].IsUndefined()) {
      if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "loadEngine: onProgress must be a function");
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

// What an engine built now for `device` (default cpu) would record as its target, with the engine format
// version this build writes. cuda: throws when this build or machine cannot run the CUDA backend.
Napi::Value EngineTargetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string device = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "cpu";
  const kvs::TargetProvider* provider = kvs::targetProviderFor(device);
  if (!provider) {
    if (device == "cuda")
      throw Napi::Error::New(env, "device cuda: this build has no CUDA backend (it was built without nvcc and cuBLASLt, "
                                  "or with KVSERVE_CUDA=OFF); rebuild where the CUDA toolkit is, or use --device cpu");
    throw Napi::Error::New(env, "unknown device \"" + device + "\" (supported: cpu, cuda)");
  }
  kvs::EngineTarget t;
  try {
    t = provider->describe();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Object o = targetObject(env, t);
  o.Set("formatVersion", kvs::kEngineFormatVersion);
  return o;
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
  exports.Set("buildEngine", Napi::Function::New(env, BuildEngine, "buildEngine"));
  exports.Set("engineTarget", Napi::Function::New(env, EngineTargetInfo, "engineTarget"));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable, "cudaAvailable"));
  exports.Set("builtWithCuda", Napi::Function::New(env, BuiltWithCuda, "builtWithCuda"));
  return exports;
}

}  // namespace kvs_native

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return kvs_native::Init(env, exports); }

NODE_API_MODULE(kvserve, InitAddon)
