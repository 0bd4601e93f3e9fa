// config.json → ModelConfig for the Llama family (llama, mistral, qwen2, qwen3). Mirrors the defaults of
// transformers' LlamaConfig / MistralConfig / Qwen2Config / Qwen3Config and both spellings of RoPE:
// classic (rope_theta + rope_scaling) and the newer rope_parameters object.
#include "model_config.h"

#include <cstdint>
#include <stdexcept>

#include "json.h"

namespace kvs {

const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    case DType::I8: return "int8";
    case DType::I32: return "int32";
    case DType::F8E4M3: return "float8_e4m3fn";
  }
  return "?";
}

size_t dtypeSize(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: return 2;
    case DType::I8: case DType::F8E4M3: return 1;
  }
  return 4;
}

const char* safetensorsDTypeName(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I8: return "I8";
    case DType::I32: return "I32";
    case DType::F8E4M3: return "F8_E4M3";
  }
  return "F32";
}

bool isFloatDType(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

bool parseTensorDType(const std::string& s, DType* out) {
  if (s == "I8") { *out = DType::I8; return true; }
  if (s == "I32") { *out = DType::I32; return true; }
  if (s == "F8_E4M3") { *out = DType::F8E4M3; return true; }
  return (s == "F32" || s == "BF16" || s == "F16") && parseDType(s, out);
}

bool parseDType(const std::string& s, DType* out) {
  if (s == "float32" || s == "F32" || s == "float" || s == "fp32") { *out = DType::F32; return true; }
  if (s == "bfloat16" || s == "BF16" || s == "bf16") { *out = DType::BF16; return true; }
  if (s == "float16" || s == "F16" || s == "half" || s == "fp16") { *out = DType::F16; return true; }
  return false;
}

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::runtime_error("config.json: " + what); }

// Reads an optional field through `read`, rethrowing type errors with the field's name.
template <typename T, typename F>
T field(const Json& obj, const char* key, T fallback, F read) {
  const Json* v = obj.find(key);
  if (!v || v->isNull()) return fallback;
  try {
    return read(*v);
  } catch (const std::runtime_error& e) {
    bad(std::string("field \"") + key + "\": " + e.what());
  }
}
// An int, refused rather than wrapped when the JSON integer does not fit in one.
int asInt32(const Json& v) {
  const int64_t i = v.asInt();
  if (i < INT32_MIN || i > INT32_MAX) throw std::runtime_error(std::to_string(i) + " is out of range");
  return static_cast<int>(i);
}
int intField(const Json& o, const char* k, int fallback) { return field<int>(o, k, fallback, asInt32); }
double numField(const Json& o, const char* k, double fallback) {
  return field<double>(o, k, fallback, [](const Json& v) { return v.asNumber(); });
}
bool boolField(const Json& o, const char* k, bool fallback) {
  return field<bool>(o, k, fallback, [](const Json& v) { return v.asBool(); });
}
std::string strField(const Json& o, const char* k, const std::string& fallback) {
  return field<std::string>(o, k, fallback, [](const Json& v) { return v.asString(); });
}
int requiredInt(const Json& o, const char* k) {
  int v = intField(o, k, -1);
  if (!o.find(k) || o.find(k)->isNull()) bad(std::string("missing required field \"") + k + "\"");
  if (v <= 0) bad(std::string("field \"") + k + "\" must be positive, found " + std::to_string(v));
  return v;
}

struct ArchInfo { const char* arch; const char* type; };
constexpr ArchInfo kArchs[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
    {"Qwen3ForCausalLM", "qwen3"},
};

// rope: either the `rope_parameters` object (theta inside) or rope_theta + rope_scaling.
RopeConfig parseRope(const Json& j) {
  RopeConfig r;
  const Json* params = j.find("rope_parameters");
  const Json* scaling = nullptr;
  if (params && params->isObject()) {
    scaling = params;
    r.theta = numField(*params, "rope_theta", numField(j, "rope_theta", 10000.0));
  } else {
    r.theta = numField(j, "rope_theta", 10000.0);
    scaling = j.find("rope_scaling");
    if (scaling && scaling->isNull()) scaling = nullptr;
    if (scaling && !scaling->isObject()) bad("field \"rope_scaling\" must be an object or null");
  }
  if (!(r.theta > 0)) bad("rope_theta must be positive");
  if (!scaling) return r;
  std::string type = strField(*scaling, "rope_type", strField(*scaling, "type", "default"));
  auto need = [&](const char* key) {
    const Json* v = scaling->find(key);
    if (!v || !v->isNumber()) bad("rope type \"" + type + "\" needs a numeric \"" + key + "\"");
    return v->asNumber();
  };
  if (type == "default") {
    r.kind = RopeKind::Default;
  } else if (type == "linear") {
    r.kind = RopeKind::Linear;
    r.factor = need("factor");
  } else if (type == "llama3") {
    r.kind = RopeKind::Llama3;
    r.factor = need("factor");
    r.lowFreqFactor = need("low_freq_factor");
    r.highFreqFactor = need("high_freq_factor");
    const double original = need("original_max_position_embeddings");
    if (!(original >= 1 && original <= 1e9)) bad("llama3 rope needs a positive original_max_position_embeddings");
    r.originalMaxPositions = static_cast<int>(original);
    if (!(r.lowFreqFactor > 0)) bad("llama3 rope needs a positive low_freq_factor");
    if (!(r.highFreqFactor > r.lowFreqFactor)) bad("llama3 rope needs high_freq_factor > low_freq_factor");
  } else {
    bad("unsupported rope type \"" + type + "\" (supported: default, linear, llama3)");
  }
  if (!(r.factor > 0)) bad("rope factor must be positive");
  return r;
}

}  // namespace

ModelConfig parseModelConfig(const std::string& jsonText) {
  Json j;
  try {
    j = Json::parse(jsonText);
  } catch (const std::runtime_error& e) {
    bad(std::string("malformed JSON: ") + e.what());
  }
  if (!j.isObject()) bad("expected a JSON object at the top level");

  ModelConfig c;
  c.modelType = strField(j, "model_type", "");
  if (const Json* a = j.find("architectures"); a && a->isArray() && !a->asArray().empty()) {
    if (!a->asArray()[0].isString()) bad("\"architectures\" must hold strings");
    c.architecture = a->asArray()[0].asString();
  }
  const ArchInfo* arch = nullptr;
  for (const ArchInfo& info : kArchs)
    if (c.architecture.empty() ? c.modelType == info.type : c.architecture == info.arch) arch = &info;
  if (!arch) {
    std::string what = c.architecture.empty() ? "model_type \"" + c.modelType + "\"" : "architecture \"" + c.architecture + "\"";
    bad("unsupported " + what +
        " (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)");
  }
  c.architecture = arch->arch;
  if (c.modelType.empty()) c.modelType = arch->type;

  c.hiddenSize = requiredInt(j, "hidden_size");
  c.intermediateSize = requiredInt(j, "intermediate_size");
  c.numLayers = requiredInt(j, "num_hidden_layers");
  c.numHeads = requiredInt(j, "num_attention_heads");
  c.numKvHeads = intField(j, "num_key_value_heads", c.numHeads);
  c.vocabSize = requiredInt(j, "vocab_size");
  c.maxPositions = intField(j, "max_position_embeddings", 2048);
  c.headDim = intField(j, "head_dim", 0);
  if (c.headDim == 0) {
    if (c.hiddenSize % c.numHeads != 0) bad("hidden_size is not a multiple of num_attention_heads and head_dim is absent");
    c.headDim = c.hiddenSize / c.numHeads;
  }
  if (c.numKvHeads <= 0 || c.numHeads % c.numKvHeads != 0)
    bad("num_attention_heads (" + std::to_string(c.numHeads) + ") must be a multiple of num_key_value_heads (" +
        std::to_string(c.numKvHeads) + ")");
  if (c.headDim <= 0 || c.headDim % 2 != 0) bad("head_dim must be a positive even number, found " + std::to_string(c.headDim));
  if (c.maxPositions <= 0) bad("max_position_embeddings must be positive");

  c.rmsNormEps = numField(j, "rms_norm_eps", 1e-6);
  // eps <= 0 divides a zero row by zero (NaN everywhere); float's own epsilon range bounds it above.
  if (!(c.rmsNormEps > 0 && c.rmsNormEps < 1e30))
    bad("field \"rms_norm_eps\" must be a positive finite number, found " + std::to_string(c.rmsNormEps));
  c.rope = parseRope(j);
  c.tieWordEmbeddings = boolField(j, "tie_word_embeddings", false);
  c.qkNorm = c.modelType == "qwen3";
  // qwen2 has q/k/v biases only. For llama and qwen3, attention_bias also puts a bias on o_proj, which
  // LayerWeights has no place for: refuse it rather than silently drop it.
  c.attentionBias = c.modelType == "qwen2";
  if (c.modelType != "qwen2" && boolField(j, "attention_bias", false))
    bad("attention_bias true is not supported for " + c.modelType + " (it adds an o_proj bias)");
  if (boolField(j, "mlp_bias", false)) bad("mlp_bias true is not supported");
  std::string act = strField(j, "hidden_act", "silu");
  if (act != "silu") bad("unsupported hidden_act \"" + act + "\" (supported: silu)");

  // A sliding window that is configured *and* in use; the engine rejects it unless it covers the context.
  int window = intField(j, "sliding_window", 0);
  bool used = c.modelType == "mistral" ? boolField(j, "use_sliding_window", true)
                                       : boolField(j, "use_sliding_window", false);
  c.slidingWindow = (used && window > 0) ? window : 0;

  std::string dt = strField(j, "torch_dtype", strField(j, "dtype", "float32"));
  if (!parseDType(dt, &c.dtype)) bad("unsupported dtype \"" + dt + "\" (supported: float32, bfloat16, float16)");

  c.bosTokenId = intField(j, "bos_token_id", -1);
  c.eosTokenIds = field<std::vector<int>>(j, "eos_token_id", {}, [](const Json& e) {
    if (!e.isArray() && !e.isNumber()) throw std::runtime_error("must be an integer or a list of integers");
    std::vector<int> ids;
    if (e.isNumber()) ids.push_back(asInt32(e));
    else for (const Json& x : e.asArray()) ids.push_back(asInt32(x));
    return ids;
  });
  // A special token the model cannot emit or embed would index past the embedding and lm_head rows.
  auto inVocab = [&](int id, const char* key) {
    if (id < 0 || id >= c.vocabSize)
      bad(std::string("field \"") + key + "\": " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(c.vocabSize) + ")");
  };
  if (const Json* b = j.find("bos_token_id"); b && !b->isNull()) inVocab(c.bosTokenId, "bos_token_id");
  for (int id : c.eosTokenIds) inVocab(id, "eos_token_id");
  return c;
}

}  // namespace kvs
