// buildEngine(opts, outDir, onProgress?) → Promise<NativeBuildResult>: `kvserve build`'s native half on a
// worker thread (engines/engine_build.h), its result as the plain object src/runner/binding.ts declares.
#pragma once
#include <napi.h>

#include "engines/engine_target.h"

namespace kvs_native {

Napi::Value BuildEngine(const Napi::CallbackInfo& info);
Napi::Object targetObject(Napi::Env env, const kvs::EngineTarget& t);

}  // namespace kvs_native
