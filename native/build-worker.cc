#include "build-worker.h"

#include <exception>
#include <string>
#include <vector>

#include "engines/engine_build.h"
#include "js-options.h"
#include "progress.h"

namespace kvs_native {

namespace {

Napi::Array stringArray(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(uint32_t(i), Napi::String::New(env, v[i]));
  return a;
}

}  // namespace

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

namespace {

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

class BuildWorker : public ProgressWorker {
 public:
  BuildWorker(Napi::Env env, kvs::EngineOptions opts, kvs::QuantizationRequest quant, std::string outDir,
              Napi::Function onProgress)
      : ProgressWorker(env, "kvserve.buildEngine", onProgress, "building the engine"), opts_(std::move(opts)),
        quant_(std::move(quant)), outDir_(std::move(outDir)) {}

 protected:
  void run(const Report& report) override { result_ = kvs::buildEngine(opts_, outDir_, quant_, report); }

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
      } else if (g.kernel == "gemv" || g.kernel == "gemv_fp8" || g.kernel == "gemv_int8") {  // cuda: a GEMV and its rows of W per CTA
        o.Set("kernel", g.kernel);
        o.Set("rowsPerCta", g.rowsPerCta);
      } else if (g.kernel == "gemv_even") {  // cuda: the even GEMV (its grid is the device's one wave)
        o.Set("kernel", g.kernel);
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
    r.Set("quantization", result_.quantization);
    if (result_.quantization == "int8") {
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

 private:
  kvs::EngineOptions opts_;
  kvs::QuantizationRequest quant_;
  std::string outDir_;
  kvs::EngineBuildResult result_;
};

}  // namespace

Napi::Value BuildEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = Napi::Promise::Deferred::New(env);
  try {
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsString())
      throw Napi::TypeError::New(env, "buildEngine: expected (options, outDir, onProgress?)");
    kvs::EngineOptions opts = readEngineOptions(info[0].As<Napi::Object>());
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

}  // namespace kvs_native
