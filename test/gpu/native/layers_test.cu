// Embedding, fused residual-add RMSNorm, RoPE + cache write (default/linear/llama3 inv_freq, qwen2 bias,
// qwen3 q/k norm), SiLU-and-mul, block copy, dtype conversion and dummy fill, against CPU references that
// round like transformers. Tolerances: the reference follows the same rounding steps, so results agree to
// within one unit in the last place of the dtype where a transcendental (rsqrt, exp, sin/cos) is involved:
// |out - ref| <= 1 ulp(dtype) * |ref| + 1e-6 (bf16 2^-7, f16 2^-10, f32 2^-20 relative).
// The fp8 cache's writers (RoPE + cache into e4m3, block copies of bytes) run at the end: kv_fp8_test.cu.
#include <algorithm>
#include <numeric>

#include "harness.h"
#include "rope.h"

namespace kt {

void kvFp8LayerTests();  // kv_fp8_test.cu

namespace {

double ulp(kvsk_dtype t) { return t == KVSK_F32 ? 1.0 / (1 << 20) : t == KVSK_F16 ? 1.0 / 1024 : 1.0 / 128; }

void embeddingCase(kvsk_dtype dt, int V, int H, int T, ErrStat& st) {
  Buf table(dt, (size_t)V * H), out(dt, (size_t)T * H);
  for (size_t i = 0; i < table.n; ++i) table.set(i, uni(-1, 1));
  std::vector<int32_t> ids(T);
  for (auto& x : ids) x = irand(0, V - 1);
  table.up(); out.poison();
  DevVec<int32_t> dIds(ids);
  kvsk_embedding_params p{table.dev, dIds.dev, out.dev, T, H, V, dt};
  CK(kvsk_embedding(&p, 0)); CK(cudaDeviceSynchronize()); out.down();
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) st.add(out.get((size_t)t * H + h), table.get((size_t)ids[t] * H + h), 0, 0);
}

void rmsnormCase(kvsk_dtype dt, int rows, int H, bool gather, ErrStat& st) {
  const float eps = 1e-5f;
  const int resRows = gather ? rows * 3 : rows;
  Buf add(dt, (size_t)resRows * H), res(dt, (size_t)resRows * H), w(dt, H), out(dt, (size_t)rows * H);
  for (size_t i = 0; i < add.n; ++i) add.set(i, uni(-2, 2));
  for (size_t i = 0; i < res.n; ++i) res.set(i, uni(-2, 2));
  for (int i = 0; i < H; ++i) w.set(i, uni(0.5f, 1.5f));
  std::vector<int32_t> idx(resRows);  // distinct rows, as sampleIndices are
  std::iota(idx.begin(), idx.end(), 0);
  if (gather) std::shuffle(idx.begin(), idx.end(), rng());
  idx.resize(rows);
  add.up(); res.up(); w.up(); out.poison();
  DevVec<int32_t> dIdx(idx);
  kvsk_rmsnorm_params p{add.dev, res.dev, gather ? dIdx.dev : nullptr, w.dev, out.dev, rows, H, eps, dt};
  Buf resOut(dt, res.n);
  CK(kvsk_rmsnorm(&p, 0)); CK(cudaDeviceSynchronize()); out.down();
  CK(cudaMemcpy(resOut.host.data(), res.dev, res.host.size(), cudaMemcpyDeviceToHost));
  for (int r = 0; r < rows; ++r) {
    std::vector<float> x(H);
    double ss = 0;
    for (int h = 0; h < H; ++h) {
      const size_t i = (size_t)idx[r] * H + h;
      x[h] = round(dt, res.get(i) + add.get(i));
      st.add(resOut.get(i), x[h], 0, 0);  // the residual sum is exact-rounded
      ss += (double)x[h] * x[h];
    }
    const double inv = 1.0 / std::sqrt(ss / H + eps);
    for (int h = 0; h < H; ++h) {
      const float ref = round(dt, w.get(h) * round(dt, (float)(x[h] * inv)));
      st.add(out.get((size_t)r * H + h), ref, 1e-6, 2 * ulp(dt));
    }
  }
}

// The rope+cache kernel (its vector kernel asked for) against the reference; where the vector kernel serves
// (bf16/f16, no q/k norm, D 16-256), also against the scalar kernel on the same data, bitwise: differences appended
// to *vecWhy.
void ropeCase(kvsk_dtype dt, int D, int Hq, int Hkv, kvs::RopeKind kind, bool bias, bool qkNorm, ErrStat& st,
              std::string* vecWhy) {
  const int T = 37, blockSize = 16, numBlocks = 8, W = (Hq + 2 * Hkv) * D;
  kvs::RopeConfig rc;
  rc.kind = kind; rc.theta = kind == kvs::RopeKind::Llama3 ? 500000.0 : 10000.0; rc.factor = kind == kvs::RopeKind::Default ? 1.0 : 8.0;
  rc.originalMaxPositions = 64;
  const std::vector<float> inv = kvs::ropeInvFreq(rc, D);
  Buf qkv(dt, (size_t)T * W), qOut(dt, (size_t)T * Hq * D), kc(dt, (size_t)numBlocks * blockSize * Hkv * D), vc(dt, kc.n);
  Buf b(dt, W), qn(dt, D), kn(dt, D);
  for (size_t i = 0; i < qkv.n; ++i) qkv.set(i, uni(-2, 2));
  for (int i = 0; i < W; ++i) b.set(i, uni(-0.5f, 0.5f));
  for (int i = 0; i < D; ++i) { qn.set(i, uni(0.5f, 1.5f)); kn.set(i, uni(0.5f, 1.5f)); }
  std::vector<int32_t> pos(T), slot(T);
  std::vector<int> slots(numBlocks * blockSize);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng());
  for (int t = 0; t < T; ++t) { pos[t] = irand(0, 5000); slot[t] = t == 3 ? -1 : slots[t]; }
  qkv.up(); b.up(); qn.up(); kn.up(); qOut.poison(); kc.poison(); vc.poison();
  DevVec<int32_t> dPos(pos), dSlot(slot);
  DevVec<float> dInv(inv);
  kvsk_rope_cache_params p{qkv.dev, qOut.dev, kc.dev, vc.dev, dPos.dev, dSlot.dev, dInv.dev,
                           bias ? b.dev : nullptr, qkNorm ? qn.dev : nullptr, qkNorm ? kn.dev : nullptr, 1e-6f,
                           T, Hq, Hkv, D, dt};
  p.vector = 1;
  CK(kvsk_rope_cache(&p, 0)); CK(cudaDeviceSynchronize()); qOut.down(); kc.down(); vc.down();
  const bool vec = (dt == KVSK_BF16 || dt == KVSK_F16) && !qkNorm && D >= 16 && D <= 256 && (D & (D - 1)) == 0;
  if (vec) {
    Buf q2(dt, qOut.n), k2(dt, kc.n), v2(dt, vc.n);
    q2.poison(); k2.poison(); v2.poison();
    kvsk_rope_cache_params s2 = p;
    s2.qOut = q2.dev; s2.kCache = k2.dev; s2.vCache = v2.dev; s2.vector = 0;
    CK(kvsk_rope_cache(&s2, 0)); CK(cudaDeviceSynchronize()); q2.down(); k2.down(); v2.down();
    const std::string c = std::string(dtName(dt)) + " D" + std::to_string(D) + (bias ? " bias" : "") + ": ";
    if (q2.host != qOut.host) *vecWhy += c + "q differs; ";
    if (k2.host != kc.host) *vecWhy += c + "k cache differs; ";
    if (v2.host != vc.host) *vecWhy += c + "v cache differs; ";
  }
  const int half = D / 2;
  auto ref = [&](int t, int off, const Buf* norm, bool rotate) {
    std::vector<float> x(D);
    for (int i = 0; i < D; ++i) {
      x[i] = qkv.get((size_t)t * W + off + i);
      if (bias) x[i] = round(dt, x[i] + b.get(off + i));
    }
    if (norm) {
      double ss = 0;
      for (float y : x) ss += (double)y * y;
      const double r = 1.0 / std::sqrt(ss / D + 1e-6);
      for (int i = 0; i < D; ++i) x[i] = round(dt, norm->get(i) * round(dt, (float)(x[i] * r)));
    }
    if (!rotate) return x;
    std::vector<float> y(D);
    for (int i = 0; i < half; ++i) {
      const float f = (float)pos[t] * inv[i];
      const float c = round(dt, (float)std::cos((double)f)), s = round(dt, (float)std::sin((double)f));
      y[i] = round(dt, round(dt, x[i] * c) + round(dt, -x[i + half] * s));
      y[i + half] = round(dt, round(dt, x[i + half] * c) + round(dt, x[i] * s));
    }
    return y;
  };
  // Rotated values: one ulp of the dtype on the inputs of the rotation (cos/sin differ by at most one ulp)
  const double rtol = 2 * ulp(dt) + (dt == KVSK_F32 ? 1e-5 : 0);
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < Hq; ++h) {
      auto r = ref(t, h * D, qkNorm ? &qn : nullptr, true);
      for (int i = 0; i < D; ++i) st.add(qOut.get(((size_t)t * Hq + h) * D + i), r[i], 2 * ulp(dt), rtol);
    }
    if (slot[t] < 0) continue;
    for (int h = 0; h < Hkv; ++h) {
      auto rk = ref(t, (Hq + h) * D, qkNorm ? &kn : nullptr, true);
      auto rv = ref(t, (Hq + Hkv + h) * D, nullptr, false);
      for (int i = 0; i < D; ++i) {
        st.add(kc.get(((size_t)slot[t] * Hkv + h) * D + i), rk[i], 2 * ulp(dt), rtol);
        st.add(vc.get(((size_t)slot[t] * Hkv + h) * D + i), rv[i], 0, 0);
      }
    }
  }
}

void siluCase(kvsk_dtype dt, int T, int I, ErrStat& st) {
  Buf gu(dt, (size_t)T * 2 * I), out(dt, (size_t)T * I);
  for (size_t i = 0; i < gu.n; ++i) gu.set(i, uni(-6, 6));
  gu.up(); out.poison();
  kvsk_silu_mul_params p{gu.dev, out.dev, T, I, dt};
  CK(kvsk_silu_mul(&p, 0)); CK(cudaDeviceSynchronize()); out.down();
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < I; ++i) {
      const double g = gu.get((size_t)t * 2 * I + i);
      const float a = round(dt, (float)(g / (1 + std::exp(-g))));
      st.add(out.get((size_t)t * I + i), round(dt, a * gu.get((size_t)t * 2 * I + I + i)), 1e-6, 2 * ulp(dt));
    }
}

}  // namespace

void layerTests() {
  for (kvsk_dtype dt : {KVSK_F32, KVSK_BF16, KVSK_F16}) {
    const std::string n = dtName(dt);
    { ErrStat st; embeddingCase(dt, 512, 64, 33, st); embeddingCase(dt, 1000, 4096, 7, st); report("layers", n + " embedding", 2, st); }
    { ErrStat st; for (int H : {64, 4096, 5120}) { rmsnormCase(dt, 17, H, false, st); rmsnormCase(dt, 9, H, true, st); }
      report("layers", n + " rmsnorm (+residual, gather)", 6, st); }
    { ErrStat st; int cases = 0; std::string vecWhy;
      for (int D : {8, 16, 32, 64, 128, 256})
        for (auto kind : {kvs::RopeKind::Default, kvs::RopeKind::Linear, kvs::RopeKind::Llama3})
          for (int var = 0; var < 3; ++var) { ropeCase(dt, D, 4, 2, kind, var == 1, var == 2, st, &vecWhy); ++cases; }
      report("layers", n + " rope+cache (3 rope kinds, bias, qk-norm)", cases, st);
      if (dt != KVSK_F32)
        reportBool("layers", n + " rope+cache vector kernel == scalar kernel bitwise (D 16-256, with and without bias)", 30,
                   vecWhy.empty(), vecWhy); }
    { ErrStat st; siluCase(dt, 13, 172, st); siluCase(dt, 3, 14336, st); report("layers", n + " silu_mul", 2, st); }
  }
  // Block copy over 2 layers x (K, V): exact.
  {
    const int planes = 4, blocks = 10, blockElems = 16 * 2 * 64;
    Buf cache(KVSK_BF16, (size_t)planes * blocks * blockElems);
    for (size_t i = 0; i < cache.n; ++i) cache.set(i, uni(-1, 1));
    cache.up();
    std::vector<int32_t> pairs = {1, 5, 7, 2, 3, 9};
    DevVec<int32_t> dp(pairs);
    kvsk_block_copy_params p{cache.dev, dp.dev, 3, planes, (int64_t)blocks * blockElems, blockElems, KVSK_BF16};
    std::vector<uint8_t> before = cache.host;
    CK(kvsk_block_copy(&p, 0)); CK(cudaDeviceSynchronize()); cache.down();
    ErrStat st;
    for (int pl = 0; pl < planes; ++pl)
      for (int b = 0; b < blocks; ++b) {
        int src = b;
        for (int i = 0; i < 3; ++i) if (pairs[2 * i + 1] == b) src = pairs[2 * i];
        for (int e = 0; e < blockElems; ++e) {
          const size_t o = ((size_t)pl * blocks + b) * blockElems + e, s = ((size_t)pl * blocks + src) * blockElems + e;
          st.add(cache.get(o), load(KVSK_BF16, before.data(), s), 0, 0);
        }
      }
    report("layers", "block copy (copy-on-write)", 1, st);
  }
  // Conversion between every pair of dtypes: exact (round-to-nearest-even of the float value).
  {
    ErrStat st;
    for (kvsk_dtype a : {KVSK_F32, KVSK_BF16, KVSK_F16})
      for (kvsk_dtype b : {KVSK_F32, KVSK_BF16, KVSK_F16}) {
        Buf src(a, 1001), dst(b, 1001);
        for (size_t i = 0; i < src.n; ++i) src.set(i, uni(-100, 100));
        src.up();
        kvsk_convert_params p{src.dev, a, dst.dev, b, 1001};
        CK(kvsk_convert(&p, 0)); CK(cudaDeviceSynchronize()); dst.down();
        for (size_t i = 0; i < src.n; ++i) st.add(dst.get(i), round(b, src.get(i)), 0, 0);
      }
    report("layers", "dtype conversion (9 pairs)", 9, st);
  }
  // Dummy fill: deterministic, inside [-scale, scale), mean near 0, constants exact.
  {
    Buf a(KVSK_BF16, 1 << 20), b(KVSK_BF16, 1 << 20), c(KVSK_F32, 100);
    kvsk_fill_params pa{a.dev, KVSK_BF16, (int64_t)a.n, 42, 0.05f, 0};
    kvsk_fill_params pc{c.dev, KVSK_F32, 100, 0, 0, 1.0f};
    CK(kvsk_fill(&pa, 0)); pa.dst = b.dev; CK(kvsk_fill(&pa, 0)); CK(kvsk_fill(&pc, 0)); CK(cudaDeviceSynchronize());
    a.down(); b.down(); c.down();
    double mean = 0;
    bool ok = a.host == b.host;
    for (size_t i = 0; i < a.n; ++i) { const float x = a.get(i); ok = ok && x >= -0.0505f && x <= 0.0505f; mean += x; }
    mean /= a.n;
    for (size_t i = 0; i < c.n; ++i) ok = ok && c.get(i) == 1.0f;
    ok = ok && std::fabs(mean) < 1e-3;
    reportBool("layers", "dummy fill (deterministic, range, constants)", 3, ok, "mean " + std::to_string(mean));
  }
  kvFp8LayerTests();
}

}  // namespace kt
