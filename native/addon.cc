// Module init: loadEngine(opts, onProgress?) → Promise<NativeEngine>, buildEngine(opts, outDir, onProgress?)
// → Promise<BuildResult>, engineTarget(), cudaAvailable(), builtWithCuda().
// Loading (mmap, dummy fill, KV allocation) and building run on a worker thread; progress is posted to the JS
// thread.
#include <napi.h>

#include <cmath>
#include <exception>
#include <string>

#include "../engines/engine_build.h"
#include "engine-wrap.h"

namespace kvs_native {

namespace {

struct Progress {
  std::string stage;
  double fraction;
};

// Calls onProgress(stage, fraction) for each queued report; a throwing callback must not break the work.
void callProgress(Napi::Env env, Napi::FunctionReference& fn, const Progress* data, size_t count) {
  if (fn.IsEmpty()) return;
  for (size_t i = 0; i < count; ++i) {
    try {
      fn.Call({Napi::String::New(env, data[i].stage), Napi::Number::New(env, data[i].fraction)});
    } catch (const Napi::Error&) {
    }
  }
}

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

  void OnProgress(const Progress* data, size_t count) override { callProgress(Env(), onProgress_, data, count); }

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
  opts.engine = str(o, "engine", "");
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

Napi::Array stringArray(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(uint32_t(i), Napi::String::New(env, v[i]));
  return a;
}

Napi::Object targetObject(Napi::Env env, const kvs::EngineTarget& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("device", t.device);
  o.Set("arch", t.arch);
  o.Set("features", stringArray(env, t.features));
  o.Set("hostFeatures", stringArray(env, t.hostFeatures));
  if (t.device == "cuda") {
    o.Set("gpuName", t.gpuName);
    o.Set("computeCapability", t.computeCapability);
    o.Set("smCount", t.smCount);
    o.Set("driverVersion", t.driverVersion);
    o.Set("cudaDriverVersion", t.cudaDriverVersion);
    o.Set("cudaRuntimeVersion", t.cudaRuntimeVersion);
    o.Set("cublasLtVersion", t.cublasLtVersion);
    o.Set("cudaArchs", t.cudaArchs);
  }
  return o;
}

class BuildWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  BuildWorker(Napi::Env env, kvs::EngineOptions opts, std::string outDir, Napi::Function onProgress)
      : Napi::AsyncProgressQueueWorker<Progress>(env, "kvserve.buildEngine"),
        deferred_(Napi::Promise::Deferred::New(env)), opts_(std::move(opts)), outDir_(std::move(outDir)) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      result_ = kvs::buildEngine(opts_, outDir_, [&](const std::string& stage, double f) {
        Progress p{stage, f};
        progress.Send(&p, 1);
      });
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown error while building the engine");
    }
  }

  void OnProgress(const Progress* data, size_t count) override { callProgress(Env(), onProgress_, data, count); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("formatVersion", kvs::kEngineFormatVersion);
    r.Set("target", targetObject(env, result_.target));
    r.Set("dtype", kvs::dtypeName(result_.dtype));
    r.Set("weightBytes", double(result_.weightBytes));
    r.Set("prepareSeconds", result_.prepareSeconds);
    r.Set("writeSeconds", result_.writeSeconds);
    r.Set("tuneSeconds", result_.tuneSeconds);
    Napi::Array tensors = Napi::Array::New(env, result_.tensors.size());
    for (size_t i = 0; i < result_.tensors.size(); ++i) {
      const kvs::BuiltTensor& t = result_.tensors[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", t.name);
      o.Set("dtype", kvs::dtypeName(t.dtype));
      Napi::Array shape = Napi::Array::New(env, t.shape.size());
      for (size_t d = 0; d < t.shape.size(); ++d) shape.Set(uint32_t(d), double(t.shape[d]));
      o.Set("shape", shape);
      o.Set("bytes", double(t.bytes));
      tensors.Set(uint32_t(i), o);
    }
    r.Set("tensors", tensors);
    Napi::Array tuned = Napi::Array::New(env, result_.tunedGemms.size());
    for (size_t i = 0; i < result_.tunedGemms.size(); ++i) {
      const kvs::TunedGemm& g = result_.tunedGemms[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("weight", g.weight);
      o.Set("n", g.n);
      o.Set("k", g.k);
      o.Set("mMin", g.mMin);
      o.Set("mMax", g.mMax);
      if (g.kernel.empty()) {
        o.Set("algo", g.algo);
      } else if (g.kernel == "gemv") {  // cuda: the GEMV kernel and its rows of W per CTA
        o.Set("kernel", g.kernel);
        o.Set("rowsPerCta", g.rowsPerCta);
      } else {  // cuda: a cuBLASLt algorithm (algo: its opaque bytes), with what it is for people
        o.Set("kernel", g.kernel);
        o.Set("algo", g.algo);
        o.Set("algoId", g.algoId);
        o.Set("tile", g.tile);
        o.Set("stages", g.stages);
        o.Set("splitK", g.splitK);
        o.Set("workspace", double(g.workspace));
      }
      tuned.Set(uint32_t(i), o);
    }
    r.Set("tunedGemms", tuned);
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  kvs::EngineOptions opts_;
  std::string outDir_;
  Napi::FunctionReference onProgress_;
  kvs::EngineBuildResult result_;
};

Napi::Value BuildEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = Napi::Promise::Deferred::New(env);
  try {
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsString())
      throw Napi::TypeError::New(env, "buildEngine: expected (options, outDir, onProgress?)");
    kvs::EngineOptions opts = readOptions(info[0].As<Napi::Object>());
    Napi::Function onProgress;
    if (info.Length() >= 3 && !info[2].IsUndefined()) {
      if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "buildEngine: onProgress must be a function");
      onProgress = info[2].As<Napi::Function>();
    }
    auto* worker = new BuildWorker(env, std::move(opts), info[1].As<Napi::String>().Utf8Value(), onProgress);
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
