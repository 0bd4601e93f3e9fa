#include "model_gemms.h"

#include <cstdio>
#include <map>
#include <tuple>
#include <utility>

namespace kvs::cuda {

namespace {

TunedGemm toTuned(const ModelGemm& g, const GemmChoice& c) {
  TunedGemm t;
  t.weight = g.weight;
  t.n = g.n;
  t.k = g.k;
  t.mMin = c.mMin;
  t.mMax = c.mMax;
  if (c.gemv) {
    t.kernel = g.fp8 ? "gemv_fp8" : "gemv";
    t.rowsPerCta = c.gemvRows;
  } else {
    t.kernel = "cublasLt";
    t.algo = algoHex(c.algo);
    t.algoId = c.algoId;
    t.tile = c.tile;
    t.stages = c.stages;
    t.splitK = c.splitK;
    t.workspace = static_cast<int64_t>(c.workspace);
  }
  return t;
}

// The records of shape g in `tuned` as choices; "" or why they cannot be.
std::string choicesFor(const ModelGemm& g, const std::vector<TunedGemm>& tuned, std::vector<GemmChoice>* out) {
  for (const TunedGemm& t : tuned) {
    if (t.weight != g.weight) continue;
    if (t.n != g.n || t.k != g.k)
      return "recorded for [" + std::to_string(t.n) + ", " + std::to_string(t.k) + "], this model's is [" +
             std::to_string(g.n) + ", " + std::to_string(g.k) + "]";
    GemmChoice c;
    c.mMin = t.mMin;
    c.mMax = t.mMax;
    if (t.kernel == (g.fp8 ? "gemv_fp8" : "gemv")) {
      c.gemv = true;
      c.gemvRows = t.rowsPerCta;
    } else if (t.kernel == "gemv" || t.kernel == "gemv_fp8") {
      return "M " + std::to_string(t.mMin) + ".." + std::to_string(t.mMax) + ": a " + t.kernel + " record for a" +
             (g.fp8 ? "n fp8" : " " + std::string("bf16/f16")) + " weight";
    } else if (t.kernel == "cublasLt") {
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
  const CudaLayerWeights* L0 = w.layers.empty() ? nullptr : &w.layers[0];
  // A matrix is fp8 when the layout made it so (its scale is there): cudaFp8Matrix(cfg, cols).
  const int qkv = (cfg.numHeads + 2 * cfg.numKvHeads) * D;
  auto fp8 = [&](int cols) { return w.fp8 && cudaFp8Matrix(cols); };
  return {
      {"qkv_proj", qkv, H, L0 ? L0->qkv : nullptr, maxT, fp8(H), L0 ? L0->qkvScale : nullptr},
      {"o_proj", H, cfg.numHeads * D, L0 ? L0->o : nullptr, maxT, fp8(cfg.numHeads * D), L0 ? L0->oScale : nullptr},
      {"gate_up_proj", 2 * I, H, L0 ? L0->gateUp : nullptr, maxT, fp8(H), L0 ? L0->gateUpScale : nullptr},
      {"down_proj", H, I, L0 ? L0->down : nullptr, maxT, fp8(I), L0 ? L0->downScale : nullptr},
      {"lm_head", V, H, w.lmHead, maxS},
  };
}

GemmPlanning planModelGemms(GemmRunner& gemm, const std::vector<ModelGemm>& shapes, DType dt,
                            const std::vector<TunedGemm>* tuned) {
  GemmPlanning r;
  // A weight of the same [n, k] as an earlier one (a tied lm_head shaped like the fused q/k/v) shares its
  // plan, which covers every M either is called with: it counts as its twin did, imported or planned.
  std::map<std::tuple<int, int, bool>, bool> importedByShape;
  for (const ModelGemm& g : shapes) {
    const auto twin = importedByShape.find({g.n, g.k, g.fp8});
    if (twin != importedByShape.end()) {
      ++(twin->second ? r.imported : r.planned);
      continue;
    }
    if (tuned && gemm.mode() == GemmMode::Fast) {
      std::vector<GemmChoice> choices;
      std::string why = choicesFor(g, *tuned, &choices);
      if (why.empty()) why = g.fp8 ? gemm.importPlanFp8(g.n, g.k, dt, choices, g.maxM) : gemm.importPlan(g.n, g.k, dt, dt, choices, g.maxM);
      if (why.empty()) {
        ++r.imported;
        importedByShape[{g.n, g.k, g.fp8}] = true;
        continue;
      }
      r.retimed.push_back(g.weight + " [" + std::to_string(g.n) + ", " + std::to_string(g.k) + "]: " + why);
    }
    if (g.fp8) gemm.planFp8(g.n, g.k, dt, g.w, g.scale, g.maxM);
    else gemm.plan(g.n, g.k, dt, dt, g.w, g.maxM);
    ++r.planned;
    importedByShape[{g.n, g.k, g.fp8}] = false;
  }
  return r;
}

std::vector<TunedGemm> exportModelGemms(GemmRunner& gemm, const std::vector<ModelGemm>& shapes, DType dt) {
  std::vector<TunedGemm> out;
  for (const ModelGemm& g : shapes)
    for (const GemmChoice& c : g.fp8 ? gemm.exportPlanFp8(g.n, g.k, dt) : gemm.exportPlan(g.n, g.k, dt, dt))
      out.push_back(toTuned(g, c));
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
