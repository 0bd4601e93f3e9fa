#include "js-options.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace kvs_native {

namespace {

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

std::vector<float> numberList(const Napi::Object& o, const char* k, const std::string& what) {
  std::vector<float> out;
  Napi::Value v = o.Get(k);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) badOption(o.Env(), what + " must be an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) badOption(o.Env(), what + " must be an array of numbers");
    out.push_back(e.As<Napi::Number>().FloatValue());
  }
  return out;
}

// options.kvScales: {k: number[], v: number[]}, one per layer (the engine checks their count and sign).
void readKvScales(const Napi::Object& o, kvs::EngineOptions& opts) {
  Napi::Value v = o.Get("kvScales");
  if (v.IsUndefined()) return;
  if (!v.IsObject() || v.IsArray()) badOption(o.Env(), "kvScales must be an object {k: number[], v: number[]}");
  Napi::Object s = v.As<Napi::Object>();
  opts.kvScalesK = numberList(s, "k", "kvScales.k");
  opts.kvScalesV = numberList(s, "v", "kvScales.v");
  if (opts.kvScalesK.empty() != opts.kvScalesV.empty())
    badOption(o.Env(), "kvScales needs both k and v (one scale per layer each)");
}

Napi::Int32Array int32Array(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    badOption(o.Env(), std::string(k) + " must be an Int32Array");
  return v.As<Napi::Int32Array>();
}

// options.quantization of buildEngine: {method, calibration: {tokens, offsets}, alphas, observers,
// tryUnsmoothed, percentile, maxLayerError, keepFloat}; absent = none.
}  // namespace

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

kvs::EngineOptions readEngineOptions(const Napi::Object& o) {
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
  // The fused kernels (verified on the GPU, H200 run 11) are on unless the option or its environment variable
  // says 0, for A/B measurements against the separate kernels.
  const auto envNotOff = [](const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr || std::string(v) != "0";
  };
  // Fused kernels not yet run on a GPU are off unless the option or its environment variable says 1.
  const auto envOn = [](const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && std::string(v) == "1";
  };
  opts.gemvFuse = boolean(o, "gemvFuse", envNotOff("KVSERVE_GEMV_FUSE"));
  opts.gemvFuseFp8 = boolean(o, "gemvFuseFp8", envOn("KVSERVE_GEMV_FUSE_FP8"));
  opts.fp8Fuse = boolean(o, "fp8Fuse", envNotOff("KVSERVE_FP8_FUSE"));
  const char* invGemm = std::getenv("KVSERVE_INVARIANT_GEMM");  // auto (the default), cublaslt, own, wgmma, hybrid
  opts.invariantGemm = str(o, "invariantGemm", invGemm && *invGemm ? invGemm : opts.invariantGemm);
  opts.quantization = str(o, "quantize", opts.quantization);  // "fp8", "int8": quantize at load (cuda)
  if (opts.quantization == "int8") opts.int8Request = readQuantization(o);  // its calibration, as buildEngine's
  opts.kvCacheDtype = str(o, "kvCacheDtype", opts.kvCacheDtype);
  readKvScales(o, opts);
  double seed = num(o, "seed", 0);
  if (!(seed >= 0 && seed <= 9007199254740991.0) || seed != std::trunc(seed))  // a safe integer, never NaN
    badOption(o.Env(), "seed must be a non-negative integer");
  opts.seed = uint64_t(seed);
  return opts;
}


}  // namespace kvs_native
