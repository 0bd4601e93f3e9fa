// The options objects of loadEngine and buildEngine (NativeEngineOptions, NativeQuantization in
// src/runner/binding.ts) read into the engine's structs; a wrong type is a TypeError naming the field.
#pragma once
#include <napi.h>

#include "engines/backend.h"
#include "engines/quantization.h"

namespace kvs_native {

// Throws a TypeError "loadEngine: FIELD must be ..." on a wrong type.
kvs::EngineOptions readEngineOptions(const Napi::Object& o);
// o.quantization; absent = method none.
kvs::QuantizationRequest readQuantization(const Napi::Object& o);

}  // namespace kvs_native
