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
  return o;
}

std::vector<std::string> stringList(const Napi::Object& o, const char* k) {
  std::vector<std::string> out;
  Napi::Value v = o.Get(k);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) badOption(o.Env(), std::string(k) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) badOption(o.Env(), std::string(k) + " must be an array of strings");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

Napi::Int32Array int32Array(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    badOption(o.Env(), std::string(k) + " must be an Int32Array");
  return v.As<Napi::Int32Array>();
}

// options.quantization of buildEngine: {method, calibration: {tokens, offsets}, alphas, observers,
// tryUnsmoothed, percentile, maxLayerError, keepFloat}; absent = none.
kvs::QuantizationRequest readQuantization(const Napi::Object& opts) {
  kvs::QuantizationRequest q;
  Napi::Value v = opts.Get("quantization");
  if (v.IsUndefined()) return q;
  if (!v.IsObject()) badOption(opts.Env(), "quantization must be an object");
  Napi::Object o = v.As<Napi::Object>();
  q.method = str(o, "method", q.method);
  Napi::Value cal = o.Get("calibration");
  if (!cal.IsUndefined()) {
    if (!cal.IsObject()) badOption(o.Env(), "quantization.calibration must be an object");
    Napi::Int32Array tokens = int32Array(cal.As<Napi::Object>(), "tokens");
    Napi::Int32Array offsets = int32Array(cal.As<Napi::Object>(), "offsets");
    for (size_t i = 0; i + 1 < offsets.ElementLength(); ++i) {
      const int32_t a = offsets[i], b = offsets[i + 1];
      if (a < 0 || b < a || size_t(b) > tokens.ElementLength()) badOption(o.Env(), "calibration offsets out of range");
      q.calibration.emplace_back(tokens.Data() + a, tokens.Data() + b);
    }
  }
  Napi::Value alphas = o.Get("alphas");
  if (!alphas.IsUndefined()) {
    if (!alphas.IsArray()) badOption(o.Env(), "quantization.alphas must be an array of numbers");
    Napi::Array a = alphas.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      const Napi::Value e = a.Get(i);
      if (!e.IsNumber()) badOption(o.Env(), "quantization.alphas must be an array of numbers");
      q.alphas.push_back(e.As<Napi::Number>().FloatValue());
    }
  }
  q.observers = stringList(o, "observers");
  q.tryUnsmoothed = boolean(o, "tryUnsmoothed", q.tryUnsmoothed);
  q.percentile = float(num(o, "percentile", q.percentile));
  q.maxLayerError = float(num(o, "maxLayerError", q.maxLayerError));
  q.keepFloat = stringList(o, "keepFloat");
  return q;
}

Napi::Object layerObject(Napi::Env env, const kvs::LayerQuantReport& l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", l.name);
  o.Set("int8", l.int8);
  if (!l.keptBecause.empty()) o.Set("keptBecause", l.keptBecause);
  o.Set("smoothing", l.smoothing);
  if (!l.observer.empty()) {
    o.Set("observer", l.observer);
    o.Set("alpha", double(l.alpha));
  }
  o.Set("error", double(l.error));
  o.Set("errorUnsmoothed", double(l.errorUnsmoothed));
  auto range = [&](float lo, float hi) {
    Napi::Array a = Napi::Array::New(env, 2);
    a.Set(uint32_t(0), double(lo));
    a.Set(uint32_t(1), double(hi));
    return a;
  };
  o.Set("weightScale", range(l.weightScaleMin, l.weightScaleMax));
  o.Set("smooth", range(l.smoothMin, l.smoothMax));
  o.Set("actMax", range(l.actMaxMin, l.actMaxMax));
  return o;
}

class BuildWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  BuildWorker(Napi::Env env, kvs::EngineOptions opts, kvs::QuantizationRequest quant, std::string outDir,
              Napi::Function onProgress)
      : Napi::AsyncProgressQueueWorker<Progress>(env, "kvserve.buildEngine"),
        deferred_(Napi::Promise::Deferred::New(env)), opts_(std::move(opts)), quant_(std::move(quant)),
        outDir_(std::move(outDir)) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    try {
      result_ = kvs::buildEngine(opts_, outDir_, quant_, [&](const std::string& stage, double f) {
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
      o.Set("algo", g.algo);
      tuned.Set(uint32_t(i), o);
    }
    r.Set("tunedGemms", tuned);
    r.Set("quantization", result_.quantization);
    if (result_.quantization != "none") {
      r.Set("int8Kernel", result_.int8Kernel);
      Napi::Array layers = Napi::Array::New(env, result_.layers.size());
      for (size_t i = 0; i < result_.layers.size(); ++i) layers.Set(uint32_t(i), layerObject(env, result_.layers[i]));
      r.Set("layers", layers);
      const kvs::CalibrationSummary& c = result_.calibration;
      Napi::Object cal = Napi::Object::New(env);
      cal.Set("samples", double(c.samples));
      cal.Set("tokens", double(c.tokens));
      cal.Set("keptTokens", double(c.keptTokens));
      cal.Set("evalTokens", double(c.evalTokens));
      cal.Set("seconds", c.seconds);
      cal.Set("searchSeconds", c.searchSeconds);
      r.Set("calibration", cal);
    }
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  kvs::EngineOptions opts_;
  kvs::QuantizationRequest quant_;
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
    kvs::QuantizationRequest quant = readQuantization(info[0].As<Napi::Object>());
    Napi::Function onProgress;
    if (info.Length() >= 3 && !info[2].IsUndefined()) {
      if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "buildEngine: onProgress must be a function");
      onProgress = info[2].As<Napi::Function>();
    }
    auto* worker = new BuildWorker(env, std::move(opts), std::move(quant), info[1].As<Napi::String>().Utf8Value(),
                                   onProgress);
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
    return deferred.Promise();
  }
}

// What an engine built now would record as its target, with the engine format version this build writes.
Napi::Value EngineTargetInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = targetObject(info.Env(), kvs::cpuTargetProvider().describe());
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
