// A StepBatch (engines/step.h) viewing the typed arrays of a JS StepBatch (src/runner/binding.ts) in place.
// Nothing is copied: the arrays are held by references until the step's worker completes, which keeps their
// memory alive. Construct and destroy on the JS thread only.
#pragma once
#include <napi.h>

#include <vector>

#include "engines/step.h"

namespace kvs_native {

class JsBatch {
 public:
  // Reads every field and checks array kinds and lengths against each other; throws Napi::Error
  // ("invalid batch: ...") on the first mismatch. Value ranges are checked by the engine.
  JsBatch(Napi::Env env, const Napi::Object& obj);
  const kvs::StepBatch& batch() const { return b_; }

 private:
  template <typename T>
  const T* array(const Napi::Object& obj, const char* name, napi_typedarray_type type, bool required, size_t* length);

  kvs::StepBatch b_;
  std::vector<Napi::Reference<Napi::Value>> refs_;
};

}  // namespace kvs_native
