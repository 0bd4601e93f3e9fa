// The GEMV's fused epilogues (kernels/gemv_fused.cu) against the two kernels each replaces, bitwise:
//   kvsk_gemv_rope_cache == kvsk_gemv then kvsk_rope_cache   (q, and the whole K and V caches: the written
//                                                               slots and every untouched byte)
//   kvsk_gemv_silu_mul   == kvsk_gemv then kvsk_silu_mul
// over Llama-3-8B's shapes and odd ones: GQA 32/8, 8/2, 8/1, 4/4, 3/1; head_dim 6 (an odd number of pairs: a
// tail CTA), 8, 64, 128, 256; M = 1..8; rowsPerCta 1, 2 and 4 (one and two pairs per CTA); with and without
// the q/k/v bias; default, linear and llama3 inv_freq; bf16/f16 caches and fp8 ones (scales 0.5 and 2);
// slots in random blocks of 8, 16 and 32 tokens, one token not cached (slot -1) and one at position 120000
// (sincosf's slow path). Token 0's results at M = 1 and in every larger call are the same bits.
#include <algorithm>
#include <numeric>

#include "harness.h"
#include "rope.h"

namespace kt {

namespace {

constexpr int kTokens = KVSK_GEMV_MAX_M;
constexpr int kRowsPerCta[] = {1, 2, 4};

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

void ropeFuse(kvsk_dtype dt, const QkvShape& s, bool bias, bool fp8, Tally& t) {
  const int N = (s.Hq + 2 * s.Hkv) * s.D, K = s.H, numBlocks = 6;
  DevWeight W(dt, N, K, 0x5eed0 + N + K);
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

  const size_t es = fp8 ? 1 : dtSize(dt), cacheBytes = (size_t)numBlocks * s.blockSize * s.Hkv * s.D * es;
  const size_t qBytes = (size_t)kTokens * s.Hq * s.D * dtSize(dt), qToken = (size_t)s.Hq * s.D * dtSize(dt);
  std::vector<uint8_t> init(cacheBytes);
  for (auto& v : init) v = (uint8_t)irand(0, 255);
  DevVec<uint8_t> q1(qBytes), q2(qBytes), k1(init), v1(init), k2(init), v2(init);
  std::vector<uint8_t> q0;  // token 0's q from the M = 1 call (of the current rowsPerCta)
  for (int rows : kRowsPerCta)
    for (int M = 1; M <= kTokens; ++M) {
      for (DevVec<uint8_t>* c : {&k1, &v1, &k2, &v2}) CK(cudaMemcpy(c->dev, init.data(), cacheBytes, cudaMemcpyHostToDevice));
      CK(cudaMemset(q1.dev, 0xFF, qBytes));
      CK(cudaMemset(q2.dev, 0xFF, qBytes));
      kvsk_gemv_params g{x.dev, W.dev, qkv.dev, M, N, K, dt, rows};
      kvsk_rope_cache_params r{qkv.dev, q1.dev, k1.dev, v1.dev, dPos.dev, dSlot.dev, invFreq.dev,
                               bias ? b.dev : nullptr, nullptr, nullptr, 1e-6f, M, s.Hq, s.Hkv, s.D, dt,
                               fp8 ? KVSK_KV_FP8_E4M3 : KVSK_KV_SAME, 0.5f, 2.0f};
      CK(kvsk_gemv(&g, 0));
      CK(kvsk_rope_cache(&r, 0));
      g.y = nullptr;  // neither the GEMV's output nor the rope kernel's input exists in the fused call
      r.qkv = nullptr;
      r.qOut = q2.dev; r.kCache = k2.dev; r.vCache = v2.dev;
      if (!kvsk_gemv_rope_cache_supported(&g, &r)) { t.fail("not supported at M " + std::to_string(M)); continue; }
      CK(kvsk_gemv_rope_cache(&g, &r, 0));
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

void siluFuse(kvsk_dtype dt, int H, int I, Tally& t) {
  DevWeight W(dt, 2 * I, H, 0x51100 + I + H);
  Buf x(dt, (size_t)kTokens * H), gateUp(dt, (size_t)kTokens * 2 * I);
  for (size_t i = 0; i < x.n; ++i) x.set(i, uni(-2, 2));
  x.up();
  const size_t outBytes = (size_t)kTokens * I * dtSize(dt), outToken = (size_t)I * dtSize(dt);
  DevVec<uint8_t> a1(outBytes), a2(outBytes);
  std::vector<uint8_t> o0;
  for (int rows : kRowsPerCta)
    for (int M = 1; M <= kTokens; ++M) {
      CK(cudaMemset(a1.dev, 0xFF, outBytes));
      CK(cudaMemset(a2.dev, 0xFF, outBytes));
      kvsk_gemv_params g{x.dev, W.dev, gateUp.dev, M, 2 * I, H, dt, rows};
      kvsk_silu_mul_params sm{gateUp.dev, a1.dev, M, I, dt};
      CK(kvsk_gemv(&g, 0));
      CK(kvsk_silu_mul(&sm, 0));
      g.y = nullptr;
      sm.gateUp = nullptr;
      sm.out = a2.dev;
      if (!kvsk_gemv_silu_mul_supported(&g, &sm)) { t.fail("not supported at M " + std::to_string(M)); continue; }
      CK(kvsk_gemv_silu_mul(&g, &sm, 0));
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

}  // namespace

void gemvFuseTests() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const bool fp8Ok = prop.major * 10 + prop.minor >= 89;
  const QkvShape shapes[] = {
      {"llama-3-8b 32/8 d128", 4096, 32, 8, 128, 16, kvs::RopeKind::Llama3},
      {"8/2 d64", 512, 8, 2, 64, 16, kvs::RopeKind::Llama3},
      {"8/1 d128", 256, 8, 1, 128, 32, kvs::RopeKind::Default},
      {"4/2 d256", 1024, 4, 2, 256, 8, kvs::RopeKind::Linear},
      {"4/4 d8", 64, 4, 4, 8, 16, kvs::RopeKind::Default},
      {"3/1 d6 (odd pairs)", 136, 3, 1, 6, 8, kvs::RopeKind::Default},
  };
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (const QkvShape& s : shapes)
      for (int v = 0; v < 3; ++v) {  // plain, bias, bias + fp8 cache
        const bool bias = v > 0, fp8 = v == 2;
        if (fp8 && (!fp8Ok || (s.D != 64 && s.D != 128 && s.D != 256))) continue;
        Tally t;
        ropeFuse(dt, s, bias, fp8, t);
        t.report(std::string(dtName(dt)) + " qkv gemv + rope+cache " + s.name + " bs" + std::to_string(s.blockSize) +
                 (bias ? " bias" : "") + (fp8 ? " fp8 cache" : "") + " (M 1-8, rows 1/2/4)");
      }
  const int siluShapes[][2] = {{4096, 14336}, {512, 768}, {264, 1003}};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (const auto& hi : siluShapes) {
      Tally t;
      siluFuse(dt, hi[0], hi[1], t);
      t.report(std::string(dtName(dt)) + " gate/up gemv + silu_mul H" + std::to_string(hi[0]) + " I" +
               std::to_string(hi[1]) + " (M 1-8, rows 1/2/4)");
    }
  refusals();
}

}  // namespace kt
