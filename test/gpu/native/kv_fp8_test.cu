// The fp8 (e4m3) KV cache's writers, bit for bit against harness.h's e4m3 reference (written from the format's
// definition: round to nearest even, saturated to +-448):
// - RoPE + cache into an fp8 cache, every variant of the layers suite (3 RoPE kinds, qwen2 bias, qwen3 q/k
//   norm, head_dim 8 to 256) at four scale pairs: q is the same bits as with a bf16/f16 cache, k is
//   e4m3(k / kScale) of the k that the bf16/f16 cache receives in the same launch shape (the rotation's one-ulp
//   freedom is the layers suite's to bound, not this one's), v is e4m3(v / vScale) of the input;
// - every finite bf16 and f16 value (and the infinities) through the V path at scales 1, 0.37, 2^-8, 16:
//   the encoder exhaustively, subnormals, ties and saturation included;
// - block copies of 1-byte elements, 16-byte aligned blocks and not.
#include <algorithm>
#include <numeric>

#include "harness.h"
#include "rope.h"

namespace kt {

namespace {

struct Scales { float k, v; };

kvsk_rope_cache_params ropeParams(const Buf& qkv, void* qOut, void* kc, void* vc, const DevVec<int32_t>& pos,
                                  const DevVec<int32_t>& slot, const DevVec<float>& inv, const Buf* bias,
                                  const Buf* qn, const Buf* kn, int T, int Hq, int Hkv, int D, kvsk_dtype dt) {
  return kvsk_rope_cache_params{qkv.dev, qOut, kc, vc, pos.dev, slot.dev, inv.dev, bias ? bias->dev : nullptr,
                                qn ? qn->dev : nullptr, kn ? kn->dev : nullptr, 1e-6f, T, Hq, Hkv, D, dt};
}

// One variant: the fp8 launch against the bf16/f16 launch on the same inputs. Returns mismatching elements.
size_t ropeFp8Case(kvsk_dtype dt, int D, kvs::RopeKind kind, bool bias, bool qkNorm, Scales sc, size_t& checked) {
  const int T = 37, Hq = 4, Hkv = 2, blockSize = 16, numBlocks = 8, W = (Hq + 2 * Hkv) * D;
  kvs::RopeConfig rc;
  rc.kind = kind; rc.theta = kind == kvs::RopeKind::Llama3 ? 500000.0 : 10000.0; rc.factor = kind == kvs::RopeKind::Default ? 1.0 : 8.0;
  rc.originalMaxPositions = 64;
  const size_t cacheN = (size_t)numBlocks * blockSize * Hkv * D;
  Buf qkv(dt, (size_t)T * W), qOut(dt, (size_t)T * Hq * D), qOut8(dt, qOut.n), kc(dt, cacheN), vc(dt, cacheN);
  Buf b(dt, W), qn(dt, D), kn(dt, D);
  for (size_t i = 0; i < qkv.n; ++i) qkv.set(i, uni(-2, 2));
  for (int i = 0; i < W; ++i) b.set(i, uni(-0.5f, 0.5f));
  for (int i = 0; i < D; ++i) { qn.set(i, uni(0.5f, 1.5f)); kn.set(i, uni(0.5f, 1.5f)); }
  std::vector<int32_t> pos(T), slot(T);
  std::vector<int> slots(numBlocks * blockSize);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng());
  for (int t = 0; t < T; ++t) { pos[t] = irand(0, 5000); slot[t] = t == 3 ? -1 : slots[t]; }
  qkv.up(); b.up(); qn.up(); kn.up(); qOut.poison(); qOut8.poison(); kc.poison(); vc.poison();
  DevVec<int32_t> dPos(pos), dSlot(slot);
  DevVec<float> dInv(kvs::ropeInvFreq(rc, D));
  DevVec<uint8_t> k8(cacheN), v8(cacheN);
  CK(cudaMemset(k8.dev, 0xFF, cacheN));  // e4m3 NaN: slots nobody writes must keep it
  CK(cudaMemset(v8.dev, 0xFF, cacheN));
  kvsk_rope_cache_params p = ropeParams(qkv, qOut.dev, kc.dev, vc.dev, dPos, dSlot, dInv, bias ? &b : nullptr,
                                        qkNorm ? &qn : nullptr, qkNorm ? &kn : nullptr, T, Hq, Hkv, D, dt);
  CK(kvsk_rope_cache(&p, 0));
  p.qOut = qOut8.dev; p.kCache = k8.dev; p.vCache = v8.dev;
  p.cacheDtype = KVSK_KV_FP8_E4M3; p.kScale = sc.k; p.vScale = sc.v;
  CK(kvsk_rope_cache(&p, 0));
  CK(cudaDeviceSynchronize());
  qOut.down(); qOut8.down(); kc.down(); vc.down();
  const std::vector<uint8_t> kb = k8.down(), vb = v8.down();
  size_t bad = qOut.host == qOut8.host ? 0 : 1;
  std::vector<bool> written(numBlocks * blockSize, false);
  for (int t = 0; t < T; ++t) {
    if (slot[t] < 0) continue;
    written[slot[t]] = true;
    for (int h = 0; h < Hkv; ++h)
      for (int i = 0; i < D; ++i) {
        const size_t at = ((size_t)slot[t] * Hkv + h) * D + i;
        float vin = qkv.get((size_t)t * W + (Hq + Hkv + h) * D + i);
        if (bias) vin = round(dt, vin + b.get((Hq + Hkv + h) * D + i));
        bad += kb[at] != e4m3Encode(kc.get(at) / sc.k);
        bad += vb[at] != e4m3Encode(vin / sc.v);
        checked += 2;
      }
  }
  for (int s = 0; s < numBlocks * blockSize; ++s)
    if (!written[s])
      for (int e = 0; e < Hkv * D; ++e) bad += kb[(size_t)s * Hkv * D + e] != 0xFF || vb[(size_t)s * Hkv * D + e] != 0xFF;
  return bad;
}

// Every finite value of dt (and +-inf) as v: T = 128 tokens x Hkv 4 x D 128 = 65536 elements, one per bit
// pattern (NaNs replaced by zero). Returns mismatching codes.
size_t encodeAllCase(kvsk_dtype dt, float vScale, size_t& checked) {
  const int T = 128, Hq = 1, Hkv = 4, D = 128, W = (Hq + 2 * Hkv) * D;
  Buf qkv(dt, (size_t)T * W), qOut(dt, (size_t)T * Hq * D);
  std::vector<float> vin((size_t)T * Hkv * D);
  for (size_t i = 0; i < qkv.n; ++i) qkv.set(i, 0.f);
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const uint16_t b16 = (uint16_t)bits;
    float x = load(dt, &b16, 0);
    if (std::isnan(x)) x = 0.f;
    const int t = (int)(bits / (Hkv * D)), e = (int)(bits % (Hkv * D));
    qkv.set((size_t)t * W + (Hq + Hkv) * D + e, x);
    vin[bits] = x;
  }
  std::vector<int32_t> pos(T, 0), slot(T);
  std::iota(slot.begin(), slot.end(), 0);
  qkv.up();
  DevVec<int32_t> dPos(pos), dSlot(slot);
  DevVec<float> dInv(std::vector<float>(D / 2, 0.f));
  DevVec<uint8_t> k8(vin.size()), v8(vin.size());
  kvsk_rope_cache_params p = ropeParams(qkv, qOut.dev, k8.dev, v8.dev, dPos, dSlot, dInv, nullptr, nullptr, nullptr,
                                        T, Hq, Hkv, D, dt);
  p.cacheDtype = KVSK_KV_FP8_E4M3; p.kScale = 1.f; p.vScale = vScale;
  CK(kvsk_rope_cache(&p, 0));
  CK(cudaDeviceSynchronize());
  const std::vector<uint8_t> vb = v8.down();
  size_t bad = 0;
  for (size_t i = 0; i < vin.size(); ++i) {
    const uint8_t want = e4m3Encode(vin[i] / vScale);
    if (vb[i] != want && bad++ < 4)
      std::printf("  e4m3(%g / %g): got 0x%02x, want 0x%02x\n", vin[i], vScale, vb[i], want);
  }
  checked += vin.size();
  return bad;
}

// Block copy over 2 layers x (K, V) of 1-byte elements: exact.
bool blockCopyCase(int64_t blockElems) {
  const int planes = 4, blocks = 10;
  std::vector<uint8_t> cache((size_t)planes * blocks * blockElems);
  for (auto& c : cache) c = (uint8_t)irand(0, 255);
  DevVec<uint8_t> dc(cache);
  const std::vector<int32_t> pairs = {1, 5, 7, 2, 3, 9};
  DevVec<int32_t> dp(pairs);
  kvsk_block_copy_params p{dc.dev, dp.dev, 3, planes, (int64_t)blocks * blockElems, blockElems, KVSK_BF16, KVSK_KV_FP8_E4M3};
  CK(kvsk_block_copy(&p, 0));
  CK(cudaDeviceSynchronize());
  const std::vector<uint8_t> after = dc.down();
  for (int pl = 0; pl < planes; ++pl)
    for (int b = 0; b < blocks; ++b) {
      int src = b;
      for (int i = 0; i < 3; ++i) if (pairs[2 * i + 1] == b) src = pairs[2 * i];
      for (int64_t e = 0; e < blockElems; ++e)
        if (after[((size_t)pl * blocks + b) * blockElems + e] != cache[((size_t)pl * blocks + src) * blockElems + e]) return false;
    }
  return true;
}

}  // namespace

void kvFp8LayerTests() {
  const Scales scales[] = {{1.f, 1.f}, {0.37f, 0.0123f}, {1.f / 256, 1.f / 256}, {16.f, 2.f}};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16}) {
    size_t bad = 0, checked = 0;
    int cases = 0;
    for (int D : {8, 64, 128, 256})
      for (auto kind : {kvs::RopeKind::Default, kvs::RopeKind::Linear, kvs::RopeKind::Llama3})
        for (int var = 0; var < 3; ++var) {
          bad += ropeFp8Case(dt, D, kind, var == 1, var == 2, scales[cases % 4], checked);
          ++cases;
        }
    reportBool("layers", std::string(dtName(dt)) + " rope+cache into fp8 (e4m3 bits of the dtype's k and v)", cases,
               bad == 0, std::to_string(bad) + " of " + std::to_string(checked) + " codes differ");
    bad = checked = 0;
    for (float s : {1.f, 0.37f, 1.f / 256, 16.f}) bad += encodeAllCase(dt, s, checked);
    reportBool("layers", std::string(dtName(dt)) + " e4m3 encoding of every " + dtName(dt) + " value (4 scales)", 4,
               bad == 0, std::to_string(bad) + " of " + std::to_string(checked) + " codes differ");
  }
  const bool ok = blockCopyCase(16 * 2 * 64) && blockCopyCase(8 * 3);
  reportBool("layers", "block copy, fp8 cache (16-byte and byte-wise)", 2, ok, ok ? "" : "a copied block differs");
}

}  // namespace kt
