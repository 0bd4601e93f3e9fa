#include "engine-wrap.h"

#include <cstring>
#include <exception>

#include "js-batch.h"

namespace kvs_native {

namespace {

template <typename TA, typename V>
TA copyToTyped(Napi::Env env, const std::vector<V>& v) {
  TA a = TA::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(V));
  return a;
}

// Runs one step on a libuv worker thread. The batch's typed arrays stay referenced (and so alive and
// unmoved) until this worker is destroyed, back on the JS thread.
class StepWorker : public Napi::AsyncWorker {
 public:
  StepWorker(Napi::Env env, EngineWrap* wrap, std::shared_ptr<kvs::Engine> engine, std::unique_ptr<JsBatch> batch)
      : Napi::AsyncWorker(env, "kvserve.step"), deferred_(Napi::Promise::Deferred::New(env)), wrap_(wrap),
        engine_(std::move(engine)), batch_(std::move(batch)) {
    wrap_->Ref();  // keep the wrapper alive until completion
  }
  ~StepWorker() override { wrap_->Unref(); }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      engine_->step(batch_->batch(), result_);
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown error in the native step");
    }
  }

  void OnOK() override {
    wrap_->stepDone();
    Napi::Env env = Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("tokens", copyToTyped<Napi::Int32Array>(env, result_.tokens));
    out.Set("logprobs", copyToTyped<Napi::Float32Array>(env, result_.logprobs));
    out.Set("topLogprobs", Napi::Number::New(env, result_.topLogprobs));
    out.Set("topIds", copyToTyped<Napi::Int32Array>(env, result_.topIds));
    out.Set("topValues", copyToTyped<Napi::Float32Array>(env, result_.topValues));
    if (batch_->batch().returnLogits) out.Set("logits", copyToTyped<Napi::Float32Array>(env, result_.logits));
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override {
    wrap_->stepDone();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  EngineWrap* wrap_;
  std::shared_ptr<kvs::Engine> engine_;
  std::unique_ptr<JsBatch> batch_;
  kvs::StepResult result_;
};

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
}

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
  o.Set("blockSize", ei.blockSize);
  o.Set("numKvBlocks", ei.backend.numKvBlocks);
  o.Set("kvBlockBytes", double(ei.backend.kvBlockBytes));
  o.Set("weightBytes", double(ei.backend.weightBytes));
  return o;
}

Napi::Value EngineWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_) return rejected(env, "engine has been disposed");
  if (busy_) return rejected(env, "a step is already running on this engine (await the previous step first)");
  if (info.Length() < 1 || !info[0].IsObject()) return rejected(env, "step(batch) needs a batch object");
  std::unique_ptr<JsBatch> batch;
  try {
    batch = std::make_unique<JsBatch>(env, info[0].As<Napi::Object>());
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
  auto* worker = new StepWorker(env, this, engine_, std::move(batch));
  busy_ = true;
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

Napi::Value EngineWrap::Dispose(const Napi::CallbackInfo& info) {
  engine_.reset();  // a step in flight keeps the engine until it completes
  return info.Env().Undefined();
}

}  // namespace kvs_native
