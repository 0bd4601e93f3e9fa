// Progress reports of the load and build workers, posted from the worker thread to the JS thread.
#pragma once
#include <napi.h>

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

}  // namespace kvs_native
