// The GEMVs' fused epilogues against the two kernels each replaces, bitwise, for the bf16/f16 GEMV
// (kernels/gemv_fused.cu) and the FP8 GEMV's version 2 on the same weights quantized per row (gemv_fp8_fused.cu):
//   kvsk_gemv_rope_cache     == kvsk_gemv then kvsk_rope_cache           (q, and the whole K and V caches: the
//   kvsk_gemv_fp8_rope_cache == kvsk_gemv_fp8 (v2) then kvsk_rope_cache   written slots and every untouched byte)
//   kvsk_gemv_silu_mul       == kvsk_gemv then kvsk_silu_mul
//   kvsk_gemv_fp8_silu_mul   == kvsk_gemv_fp8 (v2) then kvsk_silu_mul
// over Llama-3-8B's shapes and odd ones: GQA 32/8, 64/8 (more tiles than one wave of the FP8 GEMV's persistent
// CTAs: a CTA streams on into its next tile), 8/2, 8/1, 4/4, 3/1; head_dim 6 (an odd number of pairs: a tail CTA,
// and FP8 tiles of 8 pairs across heads), 8, 64, 128, 256; M = 1..8; rowsPerCta 1, 2 and 4 (one and two pairs per
// CTA; FP8: 16, 32, 64, one to four tiles); with and without the q/k/v bias; default, linear and llama3 inv_freq;
// bf16/f16 caches and fp8 ones (scales 0.5 and 2); slots in random blocks of 8, 16 and 32 tokens, one token not
// cached (slot -1) and one at position 120000 (sincosf's slow path). FP8 K is H rounded up to 16 (144 for 136: a
// partial last 64-byte block); gate/up at H 12288 has x beyond the FP8 GEMV's shared memory at M >= 7 (read from
// L1). Token 0's results at M = 1 and in every larger call are the same bits.
#include <algorithm>
#include <numeric>

#include "harness.h"
#include "rope.h"

namespace kt {

namespace {

constexpr int kTokens = KVSK_GEMV_MAX_M;

// W [n, k] on the device, uniform in +-3.2/sqrt(k) (sums of about +-2 against x in +-2).
struct DevWeight {
  void* dev = nullptr;
  DevWeight(kvsk_dtype dt, int n, int k, uint64_t seed) {
    CK(cudaMalloc(&dev, (size_t)n * k * dtSize(dt)));
    kvsk_fill_params f{dev, dt, (int64_t)n * k, seed, 3.2f / std::sqrt((float)k), 0.f};
    CK(kvsk_fill(&f, 0));
  }
  ~DevWeight() { cudaFree(dev); }
  DevWeight(const DevWeight&) = delete;
};

// The GEMV under test, plain and fused: the bf16/f16 GEMV, or (fp8) the FP8 GEMV's version 2 on the weight
// quantized per row (kvsk_quantize_weight_fp8). The fused launches leave y unset (null): neither the GEMV's output
// nor the next kernel's input exists there.
struct Gemv {
  kvsk_dtype dt;
  int n, k;
  bool fp8;
  DevWeight w;
  DevVec<uint8_t> w8;
  DevVec<float> scale;
  Gemv(kvsk_dtype dt_, int n_, int k_, bool fp8_, uint64_t seed)
      : dt(dt_), n(n_), k(k_), fp8(fp8_), w(dt_, n_, k_, seed), w8(fp8_ ? (size_t)n_ * k_ : 0), scale(fp8_ ? n_ : 0) {
    if (!fp8) return;
    kvsk_quantize_weight_fp8_params q{w.dev, w8.dev, scale.dev, n, k, dt};
    CK(kvsk_quantize_weight_fp8(&q, 0));
  }
  std::vector<int> rowsPerCta() const { return fp8 ? std::vector<int>{16, 32, 64} : std::vector<int>{1, 2, 4}; }
  kvsk_gemv_params params(const void* x, void* y, int M, int rows) const { return {x, w.dev, y, M, n, k, dt, rows}; }
  kvsk_gemv_fp8_params fp8Params(const void* x, void* y, int M, int rows) const {
    return {x, w8.dev, scale.dev, y, M, n, k, dt, rows, 2};
  }
  void run(const void* x, void* y, int M, int rows) const {
    if (fp8) {
      const kvsk_gemv_fp8_params g = fp8Params(x, y, M, rows);
      CK(kvsk_gemv_fp8(&g, 0));
    } else {
      const kvsk_gemv_params g = params(x, y, M, rows);
      CK(kvsk_gemv(&g, 0));
    }
  }
  // false (nothing launched) when the fused kernel does not support the call
  bool ropeCache(const void* x, int M, int rows, const kvsk_rope_cache_params& r) const {
    if (fp8) {
      const kvsk_gemv_fp8_params g = fp8Params(x, nullptr, M, rows);
      if (!kvsk_gemv_fp8_rope_cache_supported(&g, &r)) return false;
      CK(kvsk_gemv_fp8_rope_cache(&g, &r, 0));
    } else {
      const kvsk_gemv_params g = params(x, nullptr, M, rows);
      if (!kvsk_gemv_rope_cache_supported(&g, &r)) return false;
      CK(kvsk_gemv_rope_cache(&g, &r, 0));
    }
    return true;
  }
  bool siluMul(const void* x, int M, int rows, const kvsk_silu_mul_params& sm) const {
    if (fp8) {
      const kvsk_gemv_fp8_params g = fp8Params(x, nullptr, M, rows);
      if (!kvsk_gemv_fp8_silu_mul_supported(&g, &sm)) return false;
      CK(kvsk_gemv_fp8_silu_mul(&g, &sm, 0));
    } else {
      const kvsk_gemv_params g = params(x, nullptr, M, rows);
      if (!kvsk_gemv_silu_mul_supported(&g, &sm)) return false;
      CK(kvsk_gemv_silu_mul(&g, &sm, 0));
    }
    return true;
  }
};

size_t differing(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, size_t n) {
  size_t d = 0;
  for (size_t i = 0; i < n; ++i) d += a[i] != b[i];
  return d;
}

// What one reported row adds up: its cases, the bytes where fused and unfused differ, and what else failed.
struct Tally {
  int cases = 0;
  size_t diff = 0, mDependent = 0;
  std::string problems;
  void fail(const std::string& why) { if (problems.size() < 200) problems += why + "; "; }
  void report(const std::string& name) const {
    reportBool("gemv-fuse", name, cases, cases > 0 && diff == 0 && mDependent == 0 && problems.empty(),
               std::to_string(diff) + " bytes differ from unfused, " + std::to_string(mDependent) +
                   " of token 0 differ from M = 1" + (problems.empty() ? "" : "; " + problems));
  }
};

struct QkvShape {
  const char* name;
  int H, Hq, Hkv, D, blockSize;
  kvs::RopeKind rope;
};

void ropeFuse(kvsk_dtype dt, const QkvShape& s, bool fp8W, bool bias, bool fp8Cache, Tally& t) {
  const int N = (s.Hq + 2 * s.Hkv) * s.D, K = fp8W ? (s.H + 15) / 16 * 16 : s.H, numBlocks = 6;
  const Gemv W(dt, N, K, fp8W, 0x5eed0 + N + K);
  Buf x(dt, (size_t)kTokens * K), b(dt, N), qkv(dt, (size_t)kTokens * N);
  for (size_t i = 0; i < x.n; ++i) x.set(i, uni(-2, 2));
  for (int i = 0; i < N; ++i) b.set(i, uni(-0.5f, 0.5f));
  x.up(); b.up();
  kvs::RopeConfig rc;
  rc.kind = s.rope;
  rc.theta = s.rope == kvs::RopeKind::Llama3 ? 500000.0 : 10000.0;
  rc.factor = s.rope == kvs::RopeKind::Default ? 1.0 : 8.0;
  rc.originalMaxPositions = 256;
  DevVec<float> invFreq(kvs::ropeInvFreq(rc, s.D));
  std::vector<int32_t> pos(kTokens), slot(kTokens), all(numBlocks * s.blockSize);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng());
  for (int m = 0; m < kTokens; ++m) { pos[m] = irand(0, 5000); slot[m] = all[m]; }
  pos[2] = 120000;
  slot[5] = -1;
  DevVec<int32_t> dPos(pos), dSlot(slot);

  const size_t es = fp8Cache ? 1 : dtSize(dt), cacheBytes = (size_t)numBlocks * s.blockSize * s.Hkv * s.D * es;
  const size_t qBytes = (size_t)kTokens * s.Hq * s.D * dtSize(dt), qToken = (size_t)s.Hq * s.D * dtSize(dt);
  std::vector<uint8_t> init(cacheBytes);
  for (auto& v : init) v = (uint8_t)irand(0, 255);
  DevVec<uint8_t> q1(qBytes), q2(qBytes), k1(init), v1(init), k2(init), v2(init);
  std::vector<uint8_t> q0;  // token 0's q from the M = 1 call (of the current rowsPerCta)
  for (int rows : W.rowsPerCta())
    for (int M = 1; M <= kTokens; ++M) {
      for (DevVec<uint8_t>* c : {&k1, &v1, &k2, &v2}) CK(cudaMemcpy(c->dev, init.data(), cacheBytes, cudaMemcpyHostToDevice));
      CK(cudaMemset(q1.dev, 0xFF, qBytes));
      CK(cudaMemset(q2.dev, 0xFF, qBytes));
      kvsk_rope_cache_params r{qkv.dev, q1.dev, k1.dev, v1.dev, dPos.dev, dSlot.dev, invFreq.dev,
                               bias ? b.dev : nullptr, nullptr, nullptr, 1e-6f, M, s.Hq, s.Hkv, s.D, dt,
                               fp8Cache ? KVSK_KV_FP8_E4M3 : KVSK_KV_SAME, 0.5f, 2.0f};
      W.run(x.dev, qkv.dev, M, rows);
      CK(kvsk_rope_cache(&r, 0));
      r.qkv = nullptr;
      r.qOut = q2.dev; r.kCache = k2.dev; r.vCache = v2.dev;
      if (!W.ropeCache(x.dev, M, rows, r)) { t.fail("not supported at M " + std::to_string(M)); continue; }
      CK(cudaDeviceSynchronize());
      ++t.cases;
      const std::vector<uint8_t> a = q1.down(), c = q2.down(), ka = k1.down(), kb = k2.down(), va = v1.down(), vb = v2.down();
      const size_t qUsed = qToken * M;
      t.diff += differing(a, c, qUsed) + differing(ka, kb, cacheBytes) + differing(va, vb, cacheBytes);
      if (std::count(a.begin(), a.begin() + qUsed, (uint8_t)0xFF) == (long)qUsed) t.fail("unfused q unwritten");
      if (ka == init || va == init) t.fail("unfused cache unwritten");  // token 0 always has a slot
      if (M == 1) q0.assign(c.begin(), c.begin() + qToken);
      else t.mDependent += differing(q0, c, qToken);
    }
}

void siluFuse(kvsk_dtype dt, int H, int I, bool fp8W, Tally& t) {
  const int K = fp8W ? (H + 15) / 16 * 16 : H;
  const Gemv W(dt, 2 * I, K, fp8W, 0x51100 + I + K);
  Buf x(dt, (size_t)kTokens * K), gateUp(dt, (size_t)kTokens * 2 * I);
  for (size_t i = 0; i < x.n; ++i) x.set(i, uni(-2, 2));
  x.up();
  const size_t outBytes = (size_t)kTokens * I * dtSize(dt), outToken = (size_t)I * dtSize(dt);
  DevVec<uint8_t> a1(outBytes), a2(outBytes);
  std::vector<uint8_t> o0;
  for (int rows : W.rowsPerCta())
    for (int M = 1; M <= kTokens; ++M) {
      CK(cudaMemset(a1.dev, 0xFF, outBytes));
      CK(cudaMemset(a2.dev, 0xFF, outBytes));
      kvsk_silu_mul_params sm{gateUp.dev, a1.dev, M, I, dt};
      W.run(x.dev, gateUp.dev, M, rows);
      CK(kvsk_silu_mul(&sm, 0));
      sm.gateUp = nullptr;
      sm.out = a2.dev;
      if (!W.siluMul(x.dev, M, rows, sm)) { t.fail("not supported at M " + std::to_string(M)); continue; }
      CK(cudaDeviceSynchronize());
      ++t.cases;
      const std::vector<uint8_t> a = a1.down(), c = a2.down();
      const size_t used = outToken * M;
      t.diff += differing(a, c, outBytes);  // beyond row M - 1 both must still be the poison
      if (std::count(a.begin(), a.begin() + used, (uint8_t)0xFF) == (long)used) t.fail("unfused output unwritten");
      if (M == 1) o0.assign(c.begin(), c.begin() + outToken);
      else t.mDependent += differing(o0, c, outToken);
    }
}

// What the fused launchers refuse (the forward pass then runs the two kernels): the q/k norm, shapes that do
// not match, M beyond the GEMV's, float32.
void refusals() {
  int dummy = 0;
  void* p = &dummy;
  const kvsk_gemv_params g{p, p, nullptr, 2, (4 + 2 * 2) * 64, 512, KVSK_BF16, 4};
  const kvsk_rope_cache_params r{nullptr, p, p, p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1e-6f,
                                 2, 4, 2, 64, KVSK_BF16};
  const kvsk_silu_mul_params sm{nullptr, p, 2, 256, KVSK_BF16};
  kvsk_gemv_params gs = g;
  gs.n = 512;
  bool ok = kvsk_gemv_rope_cache_supported(&g, &r) && kvsk_gemv_silu_mul_supported(&gs, &sm);
  std::string why = ok ? "" : "a plain case refused; ";
  auto refused = [&](const kvsk_gemv_params& gg, const kvsk_rope_cache_params& rr, const char* what) {
    if (kvsk_gemv_rope_cache_supported(&gg, &rr) || kvsk_gemv_rope_cache(&gg, &rr, 0) != cudaErrorNotSupported) {
      ok = false;
      why += std::string(what) + " accepted; ";
    }
  };
  kvsk_rope_cache_params qn = r;
  qn.qNorm = p;
  refused(g, qn, "qNorm");
  kvsk_rope_cache_params kn = r;
  kn.kNorm = p;
  refused(g, kn, "kNorm");
  kvsk_gemv_params bad = g;
  bad.n -= 2;
  refused(bad, r, "n != (Hq + 2 Hkv) D");
  kvsk_rope_cache_params tokens = r;
  tokens.numTokens = 3;
  refused(g, tokens, "m != numTokens");
  bad = g;
  bad.m = 9;
  kvsk_rope_cache_params nine = r;
  nine.numTokens = 9;
  refused(bad, nine, "M 9");
  bad = g;
  bad.dtype = KVSK_F32;
  kvsk_rope_cache_params f32 = r;
  f32.dtype = KVSK_F32;
  refused(bad, f32, "float32");
  bad = g;
  bad.rowsPerCta = 3;
  refused(bad, r, "rowsPerCta 3");
  kvsk_gemv_params sg = gs;
  sg.n = 510;
  if (kvsk_gemv_silu_mul_supported(&sg, &sm) || kvsk_gemv_silu_mul(&sg, &sm, 0) != cudaErrorNotSupported) {
    ok = false;
    why += "silu n != 2 I accepted; ";
  }
  reportBool("gemv-fuse", "refused: q/k norm, mismatched shapes, M 9, float32", 9, ok, why);
}

// The same refusals of the FP8 fusions, and theirs: version 1 (or 0) of the FP8 GEMV, M 9 (the FP8 GEMV's own
// range goes to 16), K not a multiple of 16, bf16 rows per CTA.
void fp8Refusals() {
  int dummy = 0;
  void* p = &dummy;
  const kvsk_gemv_fp8_params g{p, p, nullptr, nullptr, 2, (4 + 2 * 2) * 64, 512, KVSK_BF16, 32, 2};
  const kvsk_rope_cache_params r{nullptr, p, p, p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1e-6f,
                                 2, 4, 2, 64, KVSK_BF16};
  const kvsk_silu_mul_params sm{nullptr, p, 2, 256, KVSK_BF16};
  kvsk_gemv_fp8_params gs = g;
  gs.n = 512;
  bool ok = kvsk_gemv_fp8_rope_cache_supported(&g, &r) && kvsk_gemv_fp8_silu_mul_supported(&gs, &sm);
  std::string why = ok ? "" : "a plain case refused; ";
  int cases = 0;
  auto refused = [&](const kvsk_gemv_fp8_params& gg, const kvsk_rope_cache_params& rr, const kvsk_silu_mul_params& ss,
                     const char* what) {
    ++cases;
    kvsk_gemv_fp8_params gu = gg;
    gu.n = 2 * ss.intermediate;
    if (kvsk_gemv_fp8_rope_cache_supported(&gg, &rr) || kvsk_gemv_fp8_rope_cache(&gg, &rr, 0) != cudaErrorNotSupported ||
        kvsk_gemv_fp8_silu_mul_supported(&gu, &ss) || kvsk_gemv_fp8_silu_mul(&gu, &ss, 0) != cudaErrorNotSupported) {
      ok = false;
      why += std::string(what) + " accepted; ";
    }
  };
  kvsk_gemv_fp8_params bad = g;
  bad.version = 1;
  refused(bad, r, sm, "version 1");
  bad.version = 0;
  refused(bad, r, sm, "version 0");
  bad = g;
  bad.m = 9;
  kvsk_rope_cache_params nine = r;
  nine.numTokens = 9;
  kvsk_silu_mul_params nineS = sm;
  nineS.numTokens = 9;
  refused(bad, nine, nineS, "M 9");
  bad = g;
  bad.k = 520;
  refused(bad, r, sm, "K 520");
  bad = g;
  bad.rowsPerCta = 4;
  refused(bad, r, sm, "rowsPerCta 4");
  bad = g;
  bad.dtype = KVSK_F32;
  kvsk_rope_cache_params f32 = r;
  f32.dtype = KVSK_F32;
  kvsk_silu_mul_params f32S = sm;
  f32S.dtype = KVSK_F32;
  refused(bad, f32, f32S, "float32");
  kvsk_rope_cache_params qn = r;
  qn.qNorm = p;
  ++cases;
  if (kvsk_gemv_fp8_rope_cache_supported(&g, &qn) || kvsk_gemv_fp8_rope_cache(&g, &qn, 0) != cudaErrorNotSupported) {
    ok = false;
    why += "qNorm accepted; ";
  }
  reportBool("gemv-fuse", "fp8 refused: FP8 GEMV version 1/0, M 9, K % 16, rows per CTA 4, float32, q norm", cases,
             ok, why);
}

}  // namespace

void gemvFuseTests() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const bool fp8Ok = prop.major * 10 + prop.minor >= 89;
  const QkvShape shapes[] = {
      {"llama-3-8b 32/8 d128", 4096, 32, 8, 128, 16, kvs::RopeKind::Llama3},
      {"64/8 d128 (tiles > one wave)", 1024, 64, 8, 128, 16, kvs::RopeKind::Llama3},
      {"8/2 d64", 512, 8, 2, 64, 16, kvs::RopeKind::Llama3},
      {"8/1 d128", 256, 8, 1, 128, 32, kvs::RopeKind::Default},
      {"4/2 d256", 1024, 4, 2, 256, 8, kvs::RopeKind::Linear},
      {"4/4 d8", 64, 4, 4, 8, 16, kvs::RopeKind::Default},
      {"3/1 d6 (odd pairs)", 136, 3, 1, 6, 8, kvs::RopeKind::Default},
  };
  for (bool fp8W : {false, true})
    for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
      for (const QkvShape& s : shapes)
        for (int v = 0; v < 3; ++v) {  // plain, bias, bias + fp8 cache
          const bool bias = v > 0, fp8Cache = v == 2;
          if (fp8Cache && (!fp8Ok || (s.D != 64 && s.D != 128 && s.D != 256))) continue;
          Tally t;
          ropeFuse(dt, s, fp8W, bias, fp8Cache, t);
          t.report(std::string(dtName(dt)) + " qkv " + (fp8W ? "fp8 v2 gemv" : "gemv") + " + rope+cache " + s.name + " bs" +
                   std::to_string(s.blockSize) + (bias ? " bias" : "") + (fp8Cache ? " fp8 cache" : "") +
                   (fp8W ? " (M 1-8, rows 16/32/64)" : " (M 1-8, rows 1/2/4)"));
        }
  const int siluShapes[][2] = {{4096, 14336}, {12288, 1003}, {512, 768}, {264, 1003}};
  for (bool fp8W : {false, true})
    for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
      for (const auto& hi : siluShapes) {
        Tally t;
        siluFuse(dt, hi[0], hi[1], fp8W, t);
        t.report(std::string(dtName(dt)) + " gate/up " + (fp8W ? "fp8 v2 gemv" : "gemv") + " + silu_mul H" +
                 std::to_string(hi[0]) + " I" + std::to_string(hi[1]) +
                 (fp8W ? " (M 1-8, rows 16/32/64)" : " (M 1-8, rows 1/2/4)"));
      }
  refusals();
  fp8Refusals();
}

}  // namespace kt
