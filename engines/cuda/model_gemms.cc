#include "model_gemms.h"

#include <cstdio>
#include <map>
#include <tuple>
#include <utility>

namespace kvs::cuda {

namespace {

const char* gemvKernel(GemmKind k) { return k == GemmKind::Int8 ? "gemv_int8" : k == GemmKind::Fp8 ? "gemv_fp8" : "gemv"; }
bool int8Record(const TunedGemm& t) { return t.kernel == "gemv_int8" || t.kernel == "cublasLt_int8"; }

TunedGemm toTuned(const ModelGemm& g, const GemmChoice& c) {
  TunedGemm t;
  t.weight = g.weight;
  t.n = g.n;
  t.k = g.k;
  t.mMin = c.mMin;
  t.mMax = c.mMax;
  if (c.gemv && c.gemvEven) {
    t.kernel = "gemv_even";  // bf16/f16 plans only (GemmRunner::exportPlan); its grid is the device's
  } else if (c.gemv) {
    t.kernel = gemvKernel(g.kind);
    t.rowsPerCta = c.gemvRows;
  } else {
    t.kernel = g.kind == GemmKind::Int8 ? "cublasLt_int8" : "cublasLt";
    t.algo = algoHex(c.algo);
    t.algoId = c.algoId;
    t.tile = c.tile;
    t.stages = c.stages;
    t.splitK = c.splitK;
    t.workspace = static_cast<int64_t>(c.workspace);
  }
  return t;
}

// The records of shape g in `tuned` as choices; "" or why they cannot be. An int8 shape reads the int8
// records of its weight, any other shape the rest (an int8 layout may hold a weight both ways).
std::string choicesFor(const ModelGemm& g, const std::vector<TunedGemm>& tuned, std::vector<GemmChoice>* out) {
  const bool int8 = g.kind == GemmKind::Int8;
  for (const TunedGemm& t : tuned) {
    if (t.weight != g.weight || int8Record(t) != int8) continue;
    if (t.n != g.n || t.k != g.k)
      return "recorded for [" + std::to_string(t.n) + ", " + std::to_string(t.k) + "], this model's is [" +
             std::to_string(g.n) + ", " + std::to_string(g.k) + "]";
    GemmChoice c;
    c.mMin = t.mMin;
    c.mMax = t.mMax;
    if (t.kernel == gemvKernel(g.kind)) {
      c.gemv = true;
      c.gemvRows = t.rowsPerCta;
    } else if (t.kernel == "gemv_even" && g.kind == GemmKind::Float) {
      c.gemv = true;
      c.gemvEven = true;  // GemmRunner::importPlan refuses it with KVSERVE_GEMV_EVEN=0
    } else if (t.kernel == "gemv" || t.kernel == "gemv_fp8" || t.kernel == "gemv_even") {
      return "M " + std::to_string(t.mMin) + ".." + std::to_string(t.mMax) + ": a " + t.kernel + " record for a" +
             (g.kind == GemmKind::Fp8 ? "n fp8" : " " + std::string("bf16/f16")) + " weight";
    } else if (t.kernel == (int8 ? "cublasLt_int8" : "cublasLt")) {
      if (!parseAlgoHex(t.algo, &c.algo)) return "M " + std::to_string(t.mMin) + ".." + std::to_string(t.mMax) + ": algo is not 128 hex digits";
    } else {
      return "unknown kernel \"" + t.kernel + "\"";
    }
    out->push_back(c);
  }
  return out->empty() ? "no record of it" : "";
}

}  // namespace

std::vector<ModelGemm> modelGemms(const ModelConfig& cfg, const CudaWeights& w, int maxT, int maxS) {
  const int H = cfg.hiddenSize, I = cfg.intermediateSize, V = cfg.vocabSize, D = cfg.headDim;
  const int qkv = (cfg.numHeads + 2 * cfg.numKvHeads) * D;
  const GemmKind quantized = w.quant.method == "int8" ? GemmKind::Int8 : GemmKind::Fp8;
  std::vector<ModelGemm> out;
  // A matrix is quantized where the layout made it so (its scale is there); each of its kinds is timed on
  // the first layer that has it. No layers: untimed, as the layout would hold them.
  auto add = [&](const char* name, int n, int k, const void* CudaLayerWeights::*mat, const float* CudaLayerWeights::*scale) {
    bool seen[2] = {false, false};  // float, quantized
    for (const CudaLayerWeights& L : w.layers) {
      const bool q = L.*scale != nullptr;
      if (seen[q]) continue;
      seen[q] = true;
      out.push_back({name, n, k, L.*mat, maxT, q ? quantized : GemmKind::Float, L.*scale});
    }
    if (w.layers.empty()) out.push_back({name, n, k, nullptr, maxT, GemmKind::Float, nullptr});
  };
  add("qkv_proj", qkv, H, &CudaLayerWeights::qkv, &CudaLayerWeights::qkvScale);
  add("o_proj", H, cfg.numHeads * D, &CudaLayerWeights::o, &CudaLayerWeights::oScale);
  add("gate_up_proj", 2 * I, H, &CudaLayerWeights::gateUp, &CudaLayerWeights::gateUpScale);
  add("down_proj", H, I, &CudaLayerWeights::down, &CudaLayerWeights::downScale);
  out.push_back({"lm_head", V, H, w.lmHead, maxS});
  return out;
}

GemmPlanning planModelGemms(GemmRunner& gemm, const std::vector<ModelGemm>& shapes, DType dt,
                            const std::vector<TunedGemm>* tuned) {
  GemmPlanning r;
  // A weight of the same [n, k] as an earlier one (a tied lm_head shaped like the fused q/k/v) shares its
  // plan, which covers every M either is called with: it counts as its twin did, imported or planned.
  std::map<std::tuple<int, int, GemmKind>, bool> importedByShape;
  for (const ModelGemm& g : shapes) {
    const auto twin = importedByShape.find({g.n, g.k, g.kind});
    if (twin != importedByShape.end()) {
      ++(twin->second ? r.imported : r.planned);
      continue;
    }
    if (tuned && gemm.mode() == GemmMode::Fast) {
      std::vector<GemmChoice> choices;
      std::string why = choicesFor(g, *tuned, &choices);
      if (why.empty()) {
        why = g.kind == GemmKind::Fp8    ? gemm.importPlanFp8(g.n, g.k, dt, choices, g.maxM)
              : g.kind == GemmKind::Int8 ? gemm.importPlanInt8(g.n, g.k, dt, choices, g.maxM)
                                         : gemm.importPlan(g.n, g.k, dt, dt, choices, g.maxM);
      }
      if (why.empty()) {
        ++r.imported;
        importedByShape[{g.n, g.k, g.kind}] = true;
        continue;
      }
      r.retimed.push_back(g.weight + " [" + std::to_string(g.n) + ", " + std::to_string(g.k) + "]: " + why);
    }
    if (g.kind == GemmKind::Fp8) gemm.planFp8(g.n, g.k, dt, g.w, g.scale, g.maxM);
    else if (g.kind == GemmKind::Int8) gemm.planInt8(g.n, g.k, dt, g.w, g.scale, g.maxM);
    else gemm.plan(g.n, g.k, dt, dt, g.w, g.maxM);
    ++r.planned;
    importedByShape[{g.n, g.k, g.kind}] = false;
  }
  return r;
}

std::vector<TunedGemm> exportModelGemms(GemmRunner& gemm, const std::vector<ModelGemm>& shapes, DType dt) {
  std::vector<TunedGemm> out;
  for (const ModelGemm& g : shapes) {
    const std::vector<GemmChoice> plan = g.kind == GemmKind::Fp8    ? gemm.exportPlanFp8(g.n, g.k, dt)
                                         : g.kind == GemmKind::Int8 ? gemm.exportPlanInt8(g.n, g.k, dt)
                                                                    : gemm.exportPlan(g.n, g.k, dt, dt);
    for (const GemmChoice& c : plan) out.push_back(toTuned(g, c));
  }
  return out;
}

std::string algoHex(const std::array<uint64_t, 8>& algo) {
  std::string s;
  char word[17];
  for (uint64_t v : algo) {
    std::snprintf(word, sizeof(word), "%016llx", static_cast<unsigned long long>(v));
    s += word;
  }
  return s;
}

bool parseAlgoHex(const std::string& hex, std::array<uint64_t, 8>* algo) {
  if (hex.size() != 128) return false;
  for (size_t w = 0; w < 8; ++w) {
    uint64_t v = 0;
    for (size_t i = 0; i < 16; ++i) {
      const char c = hex[w * 16 + i];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return false;
      v = (v << 4) | static_cast<uint64_t>(d);
    }
    (*algo)[w] = v;
  }
  return true;
}

}  // namespace kvs::cuda
