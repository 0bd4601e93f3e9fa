#include "js-batch.h"

#include <string>

namespace kvs_native {

namespace {

const char* typeName(napi_typedarray_type t) {
  switch (t) {
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    default: return "typed array";
  }
}

[[noreturn]] void fail(Napi::Env env, const std::string& what) {
  throw Napi::TypeError::New(env, "invalid batch: " + what);
}

void expectLength(Napi::Env env, const char* name, size_t got, size_t want, const char* why) {
  if (got != want)
    fail(env, std::string(name) + " has length " + std::to_string(got) + ", expected " + std::to_string(want) + " (" + why + ")");
}

// start [R+1] must split [0, n) of `items` into R consecutive, possibly empty rows.
void expectRows(Napi::Env env, const char* name, const int32_t* start, size_t R, size_t n, const char* items) {
  for (size_t r = 0; r < R; ++r)
    if (start[r] < 0 || start[r + 1] < start[r] || size_t(start[r + 1]) > n)
      fail(env, std::string(name) + "[" + std::to_string(r) + "] is not a range of " + items);
}

}  // namespace

template <typename T>
const T* JsBatch::array(const Napi::Object& obj, const char* name, napi_typedarray_type type, bool required,
                        size_t* length) {
  Napi::Env env = obj.Env();
  Napi::Value v = obj.Get(name);
  *length = 0;
  if (v.IsUndefined() || v.IsNull()) {
    if (required) fail(env, std::string("missing ") + name);
    return nullptr;
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    fail(env, std::string(name) + " must be an " + typeName(type));
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  refs_.push_back(Napi::Persistent(v));
  *length = arr.ElementLength();
  static const T kEmpty{};  // a valid pointer for empty arrays, never written
  return *length ? arr.Data() : &kEmpty;
}

JsBatch::JsBatch(Napi::Env env, const Napi::Object& obj) {
  size_t T, n, S1, S, R;
  b_.tokenIds = array<int32_t>(obj, "tokenIds", napi_int32_array, true, &T);
  b_.positions = array<int32_t>(obj, "positions", napi_int32_array, true, &n);
  expectLength(env, "positions", n, T, "one per token");
  b_.slotMapping = array<int32_t>(obj, "slotMapping", napi_int32_array, true, &n);
  expectLength(env, "slotMapping", n, T, "one per token");
  b_.contextLens = array<int32_t>(obj, "contextLens", napi_int32_array, true, &S);
  b_.queryStart = array<int32_t>(obj, "queryStart", napi_int32_array, true, &S1);
  expectLength(env, "queryStart", S1, S + 1, "sequences + 1");
  Napi::Value mb = obj.Get("maxBlocksPerSeq");
  if (!mb.IsNumber()) fail(env, "maxBlocksPerSeq must be a number");
  const int64_t maxBlocks = mb.As<Napi::Number>().Int64Value();
  if (maxBlocks < 0 || maxBlocks > (1 << 24)) fail(env, "maxBlocksPerSeq out of range");
  b_.blockTables = array<int32_t>(obj, "blockTables", napi_int32_array, true, &n);
  expectLength(env, "blockTables", n, S * size_t(maxBlocks), "sequences * maxBlocksPerSeq");
  b_.sampleIndices = array<int32_t>(obj, "sampleIndices", napi_int32_array, true, &R);

  kvs::SamplingBatch& s = b_.sampling;
  auto perRow = [&](auto* dst, const char* name, napi_typedarray_type type) {
    using Elem = std::remove_const_t<std::remove_pointer_t<std::remove_reference_t<decltype(*dst)>>>;
    *dst = array<Elem>(obj, name, type, true, &n);
    expectLength(env, name, n, R, "one per sampled row");
  };
  perRow(&s.temperature, "temperature", napi_float32_array);
  perRow(&s.topP, "topP", napi_float32_array);
  perRow(&s.topK, "topK", napi_int32_array);
  perRow(&s.minP, "minP", napi_float32_array);
  perRow(&s.presencePenalty, "presencePenalty", napi_float32_array);
  perRow(&s.frequencyPenalty, "frequencyPenalty", napi_float32_array);
  perRow(&s.repetitionPenalty, "repetitionPenalty", napi_float32_array);
  perRow(&s.seeds, "seeds", napi_uint32_array);
  perRow(&s.seedSteps, "seedSteps", napi_int32_array);
  perRow(&s.numLogprobs, "numLogprobs", napi_int32_array);

  size_t hs, ho, ht;
  s.historyStart = array<int32_t>(obj, "historyStart", napi_int32_array, false, &hs);
  s.historyOutputStart = array<int32_t>(obj, "historyOutputStart", napi_int32_array, false, &ho);
  s.historyTokens = array<int32_t>(obj, "historyTokens", napi_int32_array, false, &ht);
  if (s.historyStart) {
    expectLength(env, "historyStart", hs, R + 1, "sampled rows + 1");
    if (!s.historyOutputStart || !s.historyTokens) fail(env, "historyStart needs historyOutputStart and historyTokens");
    expectLength(env, "historyOutputStart", ho, R, "one per sampled row");
    expectRows(env, "historyStart", s.historyStart, R, ht, "historyTokens");
    for (size_t r = 0; r < R; ++r) {
      const int64_t o = s.historyOutputStart[r];
      if (o < 0 || s.historyStart[r] + o > s.historyStart[r + 1])
        fail(env, "historyOutputStart[" + std::to_string(r) + "] lies outside its row's history");
    }
  }
  size_t bs, bt, bv;
  s.biasStart = array<int32_t>(obj, "biasStart", napi_int32_array, false, &bs);
  s.biasTokens = array<int32_t>(obj, "biasTokens", napi_int32_array, false, &bt);
  s.biasValues = array<float>(obj, "biasValues", napi_float32_array, false, &bv);
  if (s.biasStart) {
    expectLength(env, "biasStart", bs, R + 1, "sampled rows + 1");
    if (!s.biasTokens || !s.biasValues) fail(env, "biasStart needs biasTokens and biasValues");
    expectLength(env, "biasValues", bv, bt, "one per bias token");
    expectRows(env, "biasStart", s.biasStart, R, bt, "biasTokens");
  }
  size_t mr, mw;
  s.maskRow = array<int32_t>(obj, "maskRow", napi_int32_array, false, &mr);
  s.masks = reinterpret_cast<const uint32_t*>(array<int32_t>(obj, "masks", napi_int32_array, false, &mw));
  if (s.maskRow) {
    expectLength(env, "maskRow", mr, R, "one per sampled row");
    if (!s.masks) fail(env, "maskRow needs masks");
    s.maskWords = int64_t(mw);  // whole rows of ceil(vocab / 32) words: checked by the engine, which knows vocab
  } else if (s.masks) {
    fail(env, "masks needs maskRow");
  }
  size_t c;
  b_.blockCopies = array<int32_t>(obj, "blockCopies", napi_int32_array, false, &c);
  if (c % 2) fail(env, "blockCopies must hold (src, dst) pairs");
  Napi::Value rl = obj.Get("returnLogits");
  b_.returnLogits = rl.IsBoolean() && rl.As<Napi::Boolean>().Value();
  Napi::Value ok = obj.Get("observeKvAbsMax");
  b_.observeKvAbsMax = ok.IsBoolean() && ok.As<Napi::Boolean>().Value();

  b_.numTokens = int(T);
  b_.numSeqs = int(S);
  b_.numSamples = int(R);
  b_.maxBlocksPerSeq = int(maxBlocks);
  b_.numBlockCopies = int(c / 2);
}

}  // namespace kvs_native
