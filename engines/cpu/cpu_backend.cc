// The CPU backend: the Llama-family forward pass over a batch of T new tokens, top to bottom, in float32,
// with weights held as stored (f32/bf16/f16) and widened inside the matmul, or int8 (W8A8, int8_linear.h).
// Sampling is host sampling.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cpu_backend.h"
#include "../half.h"
#include "../rope.h"
#include "../sampler.h"
#include "cpu_weights.h"
#include "norm_act.h"
#include "paged_attention.h"
#include "thread_pool.h"

namespace kvs {

namespace {

// opts.numKvBlocks, else the budget opts.kvCacheBytes, else enough blocks for maxNumSeqs full-length
// sequences, capped at 2 GiB.
int kvBlocksFor(const EngineOptions& o, size_t blockBytes) {
  if (o.numKvBlocks > 0) return o.numKvBlocks;
  double blocks;
  if (o.kvCacheBytes > 0) {
    blocks = std::floor(o.kvCacheBytes / double(blockBytes));
  } else {
    const double perSeq = std::ceil(double(o.maxModelLen) / o.blockSize);
    blocks = std::min(perSeq * o.maxNumSeqs, std::floor(2.0 * (1ull << 30) / double(blockBytes)));
  }
  if (blocks < 1)
    throw std::runtime_error("KV cache budget of " + std::to_string(size_t(o.kvCacheBytes)) +
                             " bytes is less than one block (" + std::to_string(blockBytes) + " bytes)");
  return int(std::min(blocks, 2.0e9));
}

class CpuBackend : public Backend {
 public:
  CpuBackend(const ModelConfig& cfg, std::unique_ptr<WeightStore> weights, const EngineOptions& opts)
      : cfg_(cfg), pool_(opts.numThreads), invFreq_(ropeInvFreq(cfg.rope, cfg.headDim)) {
    checkAttentionShape({cfg.numHeads, cfg.numKvHeads, cfg.headDim, 1.0f});
    DType target = cfg.dtype;
    const bool keep = opts.dtype == "auto";
    if (!keep && !parseDType(opts.dtype, &target)) throw std::runtime_error("unsupported dtype \"" + opts.dtype + "\"");
    owned_ = prepareCpuModel(cfg, *weights, target, keep, opts.seed, pool_, opts.onTensorLoaded);
    if (owned_.usesStore) store_ = std::move(weights);  // else every matrix was converted: drop the mapping
    init(owned_, opts);
  }

  CpuBackend(const ModelConfig& cfg, const CpuModel& model, const EngineOptions& opts, LinearObserver* observer)
      : cfg_(cfg), pool_(opts.numThreads), invFreq_(ropeInvFreq(cfg.rope, cfg.headDim)), observer_(observer) {
    checkAttentionShape({cfg.numHeads, cfg.numKvHeads, cfg.headDim, 1.0f});
    init(model, opts);
  }

  BackendInfo info() const override { return info_; }

  void step(const StepBatch& b, StepResult& out) override {
    for (int c = 0; c < b.numBlockCopies; ++c) cache_->copyBlock(b.blockCopies[2 * c], b.blockCopies[2 * c + 1]);
    if (b.numTokens > 0) forward(b);
    sample(b, out);
    pool_.idle();
  }

  void kvAbsMax(const int32_t* slots, int n, std::vector<float>& out) override {
    const size_t row = cache_->rowFloats();
    out.assign(size_t(cfg_.numLayers) * 2, 0.f);
    for (int l = 0; l < cfg_.numLayers; ++l)
      for (int kv = 0; kv < 2; ++kv) {
        const float* plane = kv == 0 ? cache_->k(l) : cache_->v(l);
        float m = 0.f;  // a NaN, once seen, stays: nothing compares greater
        for (int i = 0; i < n; ++i) {
          if (slots[i] < 0) continue;
          const float* r = plane + size_t(slots[i]) * row;
          for (size_t e = 0; e < row; ++e)
            if (const float a = std::fabs(r[e]); a > m || std::isnan(a)) m = a;
        }
        out[size_t(l) * 2 + kv] = m;
      }
  }

 private:
  ModelConfig cfg_;
  ThreadPool pool_;
  std::vector<float> invFreq_;  // [headDim/2]
  CpuModel owned_;              // what model_ points at, unless the model is borrowed
  const CpuModel* model_ = nullptr;
  LinearObserver* observer_ = nullptr;
  std::unique_ptr<WeightStore> store_;
  std::unique_ptr<KvCache> cache_;
  BackendInfo info_;

  void init(const CpuModel& model, const EngineOptions& opts) {
    model_ = &model;
    const ModelConfig& cfg = cfg_;
    const size_t blockBytes = size_t(cfg.numLayers) * 2 * opts.blockSize * cfg.numKvHeads * cfg.headDim * sizeof(float);
    const int blocks = kvBlocksFor(opts, blockBytes);
    cache_ = std::make_unique<KvCache>(cfg.numLayers, blocks, opts.blockSize, cfg.numKvHeads, cfg.headDim);
    info_.device = "cpu";
    info_.dtype = model.dtype;
    info_.kvCacheDtype = "float32";
    info_.numKvBlocks = blocks;
    info_.kvBlockBytes = cache_->blockBytes();
    info_.weightBytes = model.bytes;
  }

  void observe(int layer, LinearInput input, const float* x, int64_t ldx, int64_t T, int64_t K) {
    if (observer_) observer_->observe(layer, input, x, ldx, T, K);
  }

  // Activations, grown to the largest batch seen. T tokens, H hidden, Q = heads*headDim, KV = kvHeads*headDim.
  std::vector<float> x_;       // [T, H] residual stream
  std::vector<float> xn_;      // [T, H] normed input of a sublayer; also o/down projection output
  std::vector<float> q_, k_, v_, attn_;  // [T, Q], [T, KV], [T, KV], [T, Q]
  std::vector<float> gate_, up_;         // [T, I]
  std::vector<float> cos_, sin_;         // [T, headDim/2]
  std::vector<int32_t> tokenSeq_;        // [T]
  std::vector<float> hidden_, logits_;   // [R, H], [R, vocab]

  static void grow(std::vector<float>& v, size_t n) { if (v.size() < n) v.resize(n); }

  void forward(const StepBatch& b) {
    const int T = b.numTokens, H = cfg_.hiddenSize, D = cfg_.headDim, I = cfg_.intermediateSize;
    const int Q = cfg_.numHeads * D, KV = cfg_.numKvHeads * D, half = D / 2;
    const float eps = float(cfg_.rmsNormEps);
    grow(x_, size_t(T) * H); grow(xn_, size_t(T) * H);
    grow(q_, size_t(T) * Q); grow(attn_, size_t(T) * Q);
    grow(k_, size_t(T) * KV); grow(v_, size_t(T) * KV);
    grow(gate_, size_t(T) * I); grow(up_, size_t(T) * I);
    grow(cos_, size_t(T) * half); grow(sin_, size_t(T) * half);
    tokenSeq_.resize(T);
    for (int s = 0; s < b.numSeqs; ++s)
      for (int t = b.queryStart[s]; t < b.queryStart[s + 1]; ++t) tokenSeq_[t] = s;

    float *x = x_.data(), *xn = xn_.data(), *q = q_.data(), *k = k_.data(), *v = v_.data(), *attn = attn_.data();
    float *gate = gate_.data(), *up = up_.data();
    const Mat& E = model_->embed;
    pool_.parallelFor(T, 16, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row = int64_t(b.tokenIds[t]) * E.cols;
        for (int i = 0; i < H; ++i) x[t * H + i] = loadAsFloat(E.data, int(E.dtype), row + i);
        ropeCosSin(invFreq_, b.positions[t], &cos_[t * half], &sin_[t * half]);
      }
    });
    const AttentionShape shape{cfg_.numHeads, cfg_.numKvHeads, D, 1.0f / std::sqrt(float(D))};

    for (int l = 0; l < cfg_.numLayers; ++l) {
      const CpuLayer& L = model_->layers[l];
      for (int t = 0; t < T; ++t) rmsNormRow(x + size_t(t) * H, L.inputNorm.data(), H, eps, xn + size_t(t) * H);
      auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
      observe(l, LinearInput::Qkv, xn, H, T, H);
      linearMulti(pool_, xn, H, T, {{&L.q, bias(L.qBias), q, Q}, {&L.k, bias(L.kBias), k, KV}, {&L.v, bias(L.vBias), v, KV}});
      for (int t = 0; t < T; ++t) {
        const float* c = &cos_[size_t(t) * half];
        const float* s = &sin_[size_t(t) * half];
        for (int h = 0; h < cfg_.numHeads; ++h) {
          float* qh = q + size_t(t) * Q + size_t(h) * D;
          if (!L.qNorm.empty()) rmsNormRow(qh, L.qNorm.data(), D, eps, qh);
          ropeApply(qh, D, c, s);
        }
        for (int h = 0; h < cfg_.numKvHeads; ++h) {
          float* kh = k + size_t(t) * KV + size_t(h) * D;
          if (!L.kNorm.empty()) rmsNormRow(kh, L.kNorm.data(), D, eps, kh);
          ropeApply(kh, D, c, s);
        }
      }
      cache_->write(l, k, v, KV, T, b.slotMapping);
      pagedAttention(pool_, shape, b, tokenSeq_.data(), *cache_, l, q, attn);
      observe(l, LinearInput::O, attn, Q, T, Q);
      linear(pool_, attn, Q, T, L.o, nullptr, xn, H);
      for (size_t i = 0; i < size_t(T) * H; ++i) x[i] += xn[i];

      for (int t = 0; t < T; ++t) rmsNormRow(x + size_t(t) * H, L.postNorm.data(), H, eps, xn + size_t(t) * H);
      observe(l, LinearInput::GateUp, xn, H, T, H);
      linearMulti(pool_, xn, H, T, {{&L.gate, nullptr, gate, I}, {&L.up, nullptr, up, I}});
      for (int t = 0; t < T; ++t) siluMulRow(gate + size_t(t) * I, up + size_t(t) * I, I);
      observe(l, LinearInput::Down, gate, I, T, I);
      linear(pool_, gate, I, T, L.down, nullptr, xn, H);
      for (size_t i = 0; i < size_t(T) * H; ++i) x[i] += xn[i];
    }
  }

  void sample(const StepBatch& b, StepResult& out) {
    const int R = b.numSamples, H = cfg_.hiddenSize, V = cfg_.vocabSize;
    prepareSampleResult(b.sampling, R, out);
    if (R == 0) { if (b.returnLogits) out.logits.clear(); return; }
    grow(hidden_, size_t(R) * H);
    grow(logits_, size_t(R) * V);
    for (int r = 0; r < R; ++r)
      rmsNormRow(x_.data() + size_t(b.sampleIndices[r]) * H, model_->finalNorm.data(), H, float(cfg_.rmsNormEps),
                 hidden_.data() + size_t(r) * H);
    observe(cfg_.numLayers, LinearInput::LmHead, hidden_.data(), H, R, H);
    linear(pool_, hidden_.data(), H, R, model_->lmHead, nullptr, logits_.data(), V);
    pool_.parallelFor(R, 1, [&](int64_t r0, int64_t r1) {
      thread_local SamplerScratch scratch;
      for (int64_t r = r0; r < r1; ++r) sampleRow(b.sampling, int(r), logits_.data() + size_t(r) * V, V, scratch, out);
    });
    if (b.returnLogits) out.logits.assign(logits_.begin(), logits_.begin() + size_t(R) * V);
  }
};

}  // namespace

std::unique_ptr<Backend> makeCpuBackend(const ModelConfig& cfg, std::unique_ptr<WeightStore> weights,
                                        const EngineOptions& opts) {
  return std::make_unique<CpuBackend>(cfg, std::move(weights), opts);
}

std::unique_ptr<Backend> makeCpuBackendOver(const ModelConfig& cfg, const CpuModel& model, const EngineOptions& opts,
                                            LinearObserver* observer) {
  return std::make_unique<CpuBackend>(cfg, model, opts, observer);
}

}  // namespace kvs
