// The JS Engine object (NativeEngine in src/runner/binding.ts): info(), step(batch) → Promise, dispose().
// One step in flight at a time, run by a StepRunner thread; a second step() rejects. Errors become
// rejected Promises, never a crash.
#pragma once
#include <napi.h>

#include <memory>

#include "engines/engine.h"

namespace kvs_native {

class StepRunner;

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  // Defines the class and keeps its constructor in the addon's instance data.
  static void Init(Napi::Env env);
  // Wraps a loaded engine in a new JS object (JS thread only).
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<kvs::Engine> engine);

  explicit EngineWrap(const Napi::CallbackInfo& info);
  ~EngineWrap() override;

  void stepDone() { busy_ = false; }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<kvs::Engine> engine_;  // null after dispose()
  std::unique_ptr<StepRunner> runner_;   // runs the steps; holds the engine until its thread exits
  bool busy_ = false;
};

// Per-addon state: the EngineWrap constructor.
struct AddonData {
  Napi::FunctionReference engineCtor;
};

}  // namespace kvs_native
