#include "engine-wrap.h"

#include <utility>

#include "js-batch.h"
#include "step-runner.h"

namespace kvs_native {

namespace {

Napi::Value rejected(Napi::Env env, const std::string& message) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(Napi::Error::New(env, message).Value());
  return d.Promise();
}

}  // namespace

void EngineWrap::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeEngine",
                                    {InstanceMethod("info", &EngineWrap::Info), InstanceMethod("step", &EngineWrap::Step),
                                     InstanceMethod("dispose", &EngineWrap::Dispose)});
  env.GetInstanceData<AddonData>()->engineCtor = Napi::Persistent(ctor);
}

Napi::Object EngineWrap::Wrap(Napi::Env env, std::shared_ptr<kvs::Engine> engine) {
  auto* holder = new std::shared_ptr<kvs::Engine>(std::move(engine));
  Napi::External<std::shared_ptr<kvs::Engine>> ext = Napi::External<std::shared_ptr<kvs::Engine>>::New(env, holder);
  Napi::Object obj = env.GetInstanceData<AddonData>()->engineCtor.New({ext});
  delete holder;
  return obj;
}

EngineWrap::EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "NativeEngine cannot be constructed directly; use loadEngine()");
  engine_ = *info[0].As<Napi::External<std::shared_ptr<kvs::Engine>>>().Data();
  runner_ = std::make_unique<StepRunner>(info.Env(), engine_);
}

EngineWrap::~EngineWrap() = default;

Napi::Value EngineWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_) throw Napi::Error::New(env, "engine has been disposed");
  const kvs::EngineInfo& ei = engine_->info();
  const kvs::ModelConfig& c = ei.config;
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", c.architecture);
  o.Set("modelType", c.modelType);
  o.Set("hiddenSize", c.hiddenSize);
  o.Set("intermediateSize", c.intermediateSize);
  o.Set("numLayers", c.numLayers);
  o.Set("numHeads", c.numHeads);
  o.Set("numKvHeads", c.numKvHeads);
  o.Set("headDim", c.headDim);
  o.Set("vocabSize", c.vocabSize);
  o.Set("maxModelLen", ei.maxModelLen);
  o.Set("bosTokenId", c.bosTokenId);
  Napi::Array eos = Napi::Array::New(env, c.eosTokenIds.size());
  for (size_t i = 0; i < c.eosTokenIds.size(); ++i) eos.Set(uint32_t(i), c.eosTokenIds[i]);
  o.Set("eosTokenIds", eos);
  o.Set("device", ei.backend.device);
  o.Set("dtype", kvs::dtypeName(ei.backend.dtype));
  o.Set("kvCacheDtype", ei.backend.kvCacheDtype);
  o.Set("blockSize", ei.blockSize);
  o.Set("numKvBlocks", ei.backend.numKvBlocks);
  o.Set("kvBlockBytes", double(ei.backend.kvBlockBytes));
  o.Set("weightBytes", double(ei.backend.weightBytes));
  o.Set("gemmShapesImported", ei.backend.gemmShapesImported);
  o.Set("gemmShapesPlanned", ei.backend.gemmShapesPlanned);
  o.Set("quantization", ei.backend.quantization);
  o.Set("gemvFusion", ei.backend.gemvFusion);
  o.Set("gemvFuseFp8", ei.backend.gemvFuseFp8);
  o.Set("fp8Fuse", ei.backend.fp8Fuse);
  if (!ei.backend.attnPrefill.empty()) o.Set("attnPrefill", ei.backend.attnPrefill);
  if (!ei.backend.invariantGemm.empty()) o.Set("invariantGemm", ei.backend.invariantGemm);
  if (!ei.backend.attnDecode.empty()) o.Set("attnDecode", ei.backend.attnDecode);
  if (!ei.backend.kvScalesK.empty()) {
    Napi::Object scales = Napi::Object::New(env);
    for (const auto& [name, v] : {std::pair{"k", &ei.backend.kvScalesK}, std::pair{"v", &ei.backend.kvScalesV}}) {
      Napi::Array a = Napi::Array::New(env, v->size());
      for (size_t i = 0; i < v->size(); ++i) a.Set(uint32_t(i), double((*v)[i]));
      scales.Set(name, a);
    }
    o.Set("kvScales", scales);
  }
  return o;
}

Napi::Value EngineWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_) return rejected(env, "engine has been disposed");
  if (busy_) return rejected(env, "a step is already running on this engine (await the previous step first)");
  if (info.Length() < 1 || !info[0].IsObject()) return rejected(env, "step(batch) needs a batch object");
  auto job = std::make_unique<StepJob>(env);
  try {
    job->batch = std::make_unique<JsBatch>(env, info[0].As<Napi::Object>());
  } catch (const Napi::Error& e) {
    job->deferred.Reject(e.Value());
    return job->deferred.Promise();
  }
  Napi::Promise p = job->deferred.Promise();
  job->wrap = this;
  Ref();  // the wrapper (and its runner) outlive the job; released when the job completes
  busy_ = true;
  runner_->submit(env, std::move(job));
  return p;
}

Napi::Value EngineWrap::Dispose(const Napi::CallbackInfo& info) {
  engine_.reset();
  if (runner_) runner_->stop();  // its thread frees the engine once the step in flight (if any) is done
  return info.Env().Undefined();
}

}  // namespace kvs_native
