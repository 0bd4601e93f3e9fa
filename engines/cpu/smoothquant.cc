// The per-group search of smoothquant.h and the quantized CpuModel it produces.
#include "smoothquant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "../half.h"
#include "quant_error.h"

namespace kvs {

namespace {

std::vector<float> toFloat(const Mat& w) {
  std::vector<float> out(size_t(w.rows * w.cols));
  for (size_t i = 0; i < out.size(); ++i) out[i] = loadAsFloat(w.data, int(w.dtype), int64_t(i));
  return out;
}

template <typename T>
T* alloc(CpuModel& m, size_t count) {
  m.owned.push_back(std::make_unique<uint8_t[]>(count * sizeof(T)));
  m.bytes += count * sizeof(T);
  return reinterpret_cast<T*>(m.owned.back().get());
}

// w · diag(s) in dtype dt, owned by m.
Mat smoothedFloat(CpuModel& m, const Mat& src, const std::vector<float>& w, const std::vector<float>& s) {
  Mat out = src;
  const size_t n = w.size();
  void* dst = alloc<uint8_t>(m, n * dtypeSize(src.dtype));
  for (size_t i = 0; i < n; ++i) {
    const float v = w[i] * s[i % size_t(src.cols)];
    if (src.dtype == DType::F32) static_cast<float*>(dst)[i] = v;
    else if (src.dtype == DType::BF16) static_cast<uint16_t*>(dst)[i] = floatToBf16(v);
    else static_cast<uint16_t*>(dst)[i] = floatToF16(v);
  }
  out.data = dst;
  return out;
}

float percentileOf(std::vector<float>& v, float p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, size_t(std::floor(double(p) / 100.0 * double(v.size() - 1))));
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(i), v.end());
  return v[i];
}

const char* observerName(Observer o) { return o == Observer::AbsMax ? "absmax" : "percentile"; }

struct Member {
  Member(std::string n, const Mat* s, Mat* d) : name(std::move(n)), src(s), dst(d) {}
  std::string name;
  const Mat* src;           // the float model's
  Mat* dst;                 // the quantized model's
  std::vector<float> w;     // src as float32 [rows, K]
  std::vector<float> ref;   // X_eval · srcᵀ [N, rows]
  bool forced = false;      // named by the caller (or the layout): float whatever its error
  std::string why;          // forced: the reason the report gives
};

std::string fmt(float v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", double(v));
  return b;
}

class Quantizer {
 public:
  Quantizer(const CalibrationStats& st, const QuantizeOptions& o, ThreadPool& pool, QuantizedCpuModel& out)
      : st_(st), o_(o), pool_(pool), out_(out) {}

  // norm: the quantized model's norm weight that produces this input (nullptr: smooth through actSmooth).
  void group(int layer, LinearInput in, std::vector<Member> members, std::vector<float>* norm) {
    const InputStats& x = st_.at(layer, in);
    const int64_t K = x.K;
    for (Member& m : members) {
      m.forced = std::find(o_.keepFloat.begin(), o_.keepFloat.end(), m.name) != o_.keepFloat.end();
      if (m.forced) m.why = "--keep-precision";
      const auto layout = o_.keepFloatBecause.find(m.name);
      if (!m.forced && layout != o_.keepFloatBecause.end()) {
        m.forced = true;
        m.why = layout->second;
      }
    }
    if (o_.fusedGroups) {  // one forced member keeps the fused matrix in float
      const auto f = std::find_if(members.begin(), members.end(), [](const Member& m) { return m.forced; });
      if (f != members.end())
        for (Member& m : members)
          if (!m.forced) {
            m.forced = true;
            m.why = "fused with " + f->name + " (" + f->why + ")";
          }
    }

    // Eval rows: evenly spaced among the kept ones.
    const int64_t n = std::min<int64_t>(x.keptRows, o_.evalRows);
    std::vector<float> xe(size_t(n * K));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = n > 1 ? i * (x.keptRows - 1) / (n - 1) : 0;
      std::memcpy(&xe[size_t(i * K)], &x.kept[size_t(r * K)], size_t(K) * sizeof(float));
    }
    OutputError g(pool_, xe, n, K);
    std::vector<float> wmax(size_t(K), 0.0f);
    for (Member& m : members) {
      m.w = toFloat(*m.src);
      m.ref = g.reference(*m.src);
      if (m.forced) continue;
      for (int64_t r = 0; r < m.src->rows; ++r)
        for (int64_t k = 0; k < K; ++k) wmax[size_t(k)] = std::max(wmax[size_t(k)], std::fabs(m.w[size_t(r * K + k)]));
    }

    // The candidates, scored by the summed error of the members that may become int8.
    struct Choice { std::string observer; float alpha = 0; std::vector<float> s; float score = 1e30f; };
    std::vector<Choice> candidates;
    if (o_.tryUnsmoothed) candidates.push_back({});
    for (Observer ob : o_.observers) {
      std::vector<float> xmax = x.absMax;
      if (ob == Observer::Percentile) {
        std::vector<float> col(size_t(x.keptRows));
        for (int64_t k = 0; k < K; ++k) {
          for (int64_t r = 0; r < x.keptRows; ++r) col[size_t(r)] = std::fabs(x.kept[size_t(r * K + k)]);
          xmax[size_t(k)] = percentileOf(col, o_.percentile);
        }
      }
      for (float a : o_.alphas) {
        Choice c{observerName(ob), a, std::vector<float>(size_t(K), 1.0f)};
        for (int64_t k = 0; k < K; ++k) {
          const float xm = xmax[size_t(k)], wm = wmax[size_t(k)];
          if (xm > 0 && wm > 0)
            c.s[size_t(k)] = std::clamp(float(std::pow(double(xm), a) / std::pow(double(wm), 1.0 - a)), 1e-5f, 1e5f);
        }
        candidates.push_back(std::move(c));
      }
    }
    const bool anySearchable = std::any_of(members.begin(), members.end(), [](const Member& m) { return !m.forced; });
    Int8Trial t;
    std::vector<float> unsmoothedError(members.size(), 0.0f);
    Choice* best = nullptr;
    for (Choice& c : candidates) {
      c.score = 0;
      for (size_t i = 0; i < members.size(); ++i) {
        if (members[i].forced) continue;
        g.trial(members[i].w, members[i].src->rows, members[i].ref, c.s, t);
        c.score += t.error;
        if (c.s.empty()) unsmoothedError[i] = t.error;
      }
      if (!best || c.score < best->score) best = &c;
      if (!anySearchable) break;
    }
    if (!o_.tryUnsmoothed)
      for (size_t i = 0; i < members.size(); ++i) {
        g.trial(members[i].w, members[i].src->rows, members[i].ref, {}, t);
        unsmoothedError[i] = t.error;
      }

    // Decide each member; smoothing stays only when some member is int8.
    std::vector<Int8Trial> trials(members.size());
    std::vector<bool> int8(members.size(), false);
    std::vector<std::string> fusedWith(members.size());  // fused groups: the member over the bound that keeps this one float
    for (size_t i = 0; i < members.size(); ++i) {
      g.trial(members[i].w, members[i].src->rows, members[i].ref, best->s, trials[i]);
      int8[i] = !members[i].forced && trials[i].error <= o_.maxLayerError;
    }
    if (o_.fusedGroups) {  // the first member over the bound keeps the others float
      size_t over = 0;
      while (over < members.size() && (int8[over] || members[over].forced)) ++over;
      if (over < members.size())
        for (size_t j = 0; j < members.size(); ++j)
          if (int8[j]) {
            int8[j] = false;
            fusedWith[j] = "fused with " + members[over].name + ", whose output error " + fmt(trials[over].error) +
                           " > bound " + fmt(o_.maxLayerError);
          }
    }
    const bool anyInt8 = std::find(int8.begin(), int8.end(), true) != int8.end();
    const std::vector<float> s = anyInt8 ? best->s : std::vector<float>{};
    if (!s.empty() && norm)
      for (int64_t k = 0; k < K; ++k) (*norm)[size_t(k)] /= s[size_t(k)];
    float* actSmooth = nullptr;
    if (!s.empty() && !norm) {
      actSmooth = alloc<float>(out_.model, size_t(K));
      for (int64_t k = 0; k < K; ++k) actSmooth[k] = 1.0f / s[size_t(k)];
    }

    for (size_t i = 0; i < members.size(); ++i) {
      const Member& m = members[i];
      LayerQuantReport r;
      r.name = m.name;
      r.int8 = int8[i];
      r.smoothing = s.empty() ? "none" : norm ? "norm" : "act";
      if (!s.empty()) {
        r.observer = best->observer;
        r.alpha = best->alpha;
        r.smoothMin = *std::min_element(s.begin(), s.end());
        r.smoothMax = *std::max_element(s.begin(), s.end());
      }
      r.error = trials[i].error;
      r.errorUnsmoothed = unsmoothedError[i];
      r.weightScaleMin = *std::min_element(trials[i].scale.begin(), trials[i].scale.end());
      r.weightScaleMax = *std::max_element(trials[i].scale.begin(), trials[i].scale.end());
      r.actMaxMin = *std::min_element(x.absMax.begin(), x.absMax.end());
      r.actMaxMax = *std::max_element(x.absMax.begin(), x.absMax.end());
      if (m.forced) r.keptBecause = m.why;
      else if (!fusedWith[i].empty()) r.keptBecause = fusedWith[i];
      else if (!int8[i]) r.keptBecause = "output error " + fmt(r.error) + " > bound " + fmt(o_.maxLayerError);

      if (int8[i]) {
        const Int8Trial& q = trials[i];
        Mat w;
        w.dtype = DType::I8;
        w.rows = m.src->rows;
        w.cols = K;
        auto* qd = alloc<int8_t>(out_.model, q.q.size());
        std::memcpy(qd, q.q.data(), q.q.size());
        auto* sc = alloc<float>(out_.model, q.scale.size());
        std::memcpy(sc, q.scale.data(), q.scale.size() * sizeof(float));
        auto* sm = alloc<int32_t>(out_.model, q.sum.size());
        std::memcpy(sm, q.sum.data(), q.sum.size() * sizeof(int32_t));
        w.data = qd;
        w.scale = sc;
        w.rowSum = sm;
        w.actSmooth = actSmooth;
        *m.dst = w;
        out_.model.quantized = true;
      } else if (!s.empty() && norm) {
        *m.dst = smoothedFloat(out_.model, *m.src, m.w, s);  // its input is the smoothed norm's output
      } else {
        *m.dst = *m.src;
      }
      out_.layers.push_back(std::move(r));
    }
  }

 private:
  const CalibrationStats& st_;
  const QuantizeOptions& o_;
  ThreadPool& pool_;
  QuantizedCpuModel& out_;
};

}  // namespace

std::vector<std::string> quantizableLayers(const ModelConfig& cfg) {
  std::vector<std::string> out;
  for (int l = 0; l < cfg.numLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      out.push_back(p + n);
  }
  out.push_back("lm_head");
  return out;
}

QuantizedCpuModel quantizeSmoothQuant(const ModelConfig& cfg, const CpuModel& f, const CalibrationStats& st,
                                      const QuantizeOptions& o, ThreadPool& pool,
                                      const std::function<void(double)>& progress) {
  QuantizedCpuModel out;
  CpuModel& m = out.model;
  m.embed = f.embed;
  m.lmHead = f.lmHead;
  m.finalNorm = f.finalNorm;
  m.layers = f.layers;  // vectors copied (norms are folded into the copies), matrices replaced below
  m.dtype = f.dtype;
  m.bytes = f.bytes;
  Quantizer q(st, o, pool, out);
  const int groups = cfg.numLayers * kLinearInputsPerLayer + 1;
  int done = 0;
  auto tick = [&] { if (progress) progress(double(++done) / groups); };
  for (int l = 0; l < cfg.numLayers; ++l) {
    const CpuLayer& F = f.layers[size_t(l)];
    CpuLayer& L = m.layers[size_t(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    q.group(l, LinearInput::Qkv,
            {{p + "self_attn.q_proj", &F.q, &L.q}, {p + "self_attn.k_proj", &F.k, &L.k}, {p + "self_attn.v_proj", &F.v, &L.v}},
            &L.inputNorm);
    tick();
    q.group(l, LinearInput::O, {{p + "self_attn.o_proj", &F.o, &L.o}}, nullptr);
    tick();
    q.group(l, LinearInput::GateUp, {{p + "mlp.gate_proj", &F.gate, &L.gate}, {p + "mlp.up_proj", &F.up, &L.up}},
            &L.postNorm);
    tick();
    q.group(l, LinearInput::Down, {{p + "mlp.down_proj", &F.down, &L.down}}, nullptr);
    tick();
  }
  q.group(cfg.numLayers, LinearInput::LmHead, {{"lm_head", &f.lmHead, &m.lmHead}}, &m.finalNorm);
  tick();
  return out;
}

}  // namespace kvs
