// Paged attention against a naive float64 CPU reference over a grid: dtype {bf16, f16} x head_dim {64, 128}
// (and 256 at G 1, 4, block 16) — the tensor-core kernel
// x group {1, 2, 4, 8} x block size {16, 32} x scenarios (decode batch 256; decode 1 x 8k and 8 mixed up to
// 4k, split-KV over 128-key partitions, up to 64 of them; chunked prefill with prefix hits next to decodes;
// a 64-token chunk at the end of an 8k context), plus head_dim 8 / f32 (stories260K's shape). Physical blocks are shuffled; every cache slot no
// sequence owns holds NaN, so a read outside the block table or past the context poisons the output.
// Tolerance |out - ref| <= atol + rtol |ref|: f32 1e-5/1e-4, f16 2e-3/2e-3, bf16 1.6e-2/1.6e-2
// (one rounding of the output to the dtype dominates). The cases are attention_case.h's; prefill-shaped
// launches here run version 1 (attention_prefill_test.cu runs version 2 beside it).
// The same scenarios over an fp8 (e4m3) cache (bf16, f16 x head_dim 64 (block 16), 128 (16, 32) x G 1, 4, 8;
// 256 at G 1, 4), with the dtype's tolerance: the reference attends over the dequantized cache (code value *
// the layer's scale, in float64), so the cache's own rounding is not in the error; unowned slots hold the e4m3
// NaN. Scales 1 (the default: small values are e4m3 subnormals or zero) and 1/64, 0.0123.
// Batch invariance at the kernel: decode rows computed in a pure decode launch (the split decode kernel), in
// a mixed launch beside a prefill (the prefill-shaped kernel) and with every tile through the merge (what a
// graphed step does) give the same bits, for both cache dtypes.
#include "attention_case.h"

namespace kt {

namespace {

void runCase(kvsk_dtype dt, int D, int G, int blockSize, const std::vector<Seq>& seqs, const std::string& scen,
             ErrStat& stat, const KvFormat& fmt = {}) {
  const AttnCase c(dt, D, G, blockSize, seqs, fmt);
  c.check(c.run(KVSK_ATTN_PREFILL_V1), stat, scen);
}

std::vector<Seq> decodeBatch(int n, int maxCtx) {
  std::vector<Seq> v;
  for (int i = 0; i < n; ++i) v.push_back({irand(0, maxCtx - 1), 1});
  return v;
}

}  // namespace

void attentionTests() {
  struct Scenario { std::string name; std::function<std::vector<Seq>()> make; };
  const std::vector<Scenario> scenarios = {
      {"decode b256 ctx1-600", [] { auto v = decodeBatch(256, 600); v[0].cached = 0; return v; }},
      {"decode b1 ctx8192 + b8 ctx<=4096 (split-KV)", [] { auto v = decodeBatch(8, 4096); v.push_back({8191, 1}); return v; }},
      {"chunked prefill + prefix hits + decodes", [] {
         return std::vector<Seq>{{0, 1}, {0, 37}, {100, 200}, {1000, 513}, {5, 1}, {700, 1}, {31, 64}};
       }},
      {"64-token chunk at ctx 8192", [] { return std::vector<Seq>{{8128, 64}}; }},
  };
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128})
      for (int G : {1, 2, 4, 8})
        for (int bs : {16, 32}) {
          for (auto& sc : scenarios) {
            ErrStat st;
            runCase(dt, D, G, bs, sc.make(), sc.name, st);
            report("attention", std::string(dtName(dt)) + " D" + std::to_string(D) + " G" + std::to_string(G) +
                   " bs" + std::to_string(bs) + " " + sc.name, 1, st);
          }
        }
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})  // head_dim 256 (tensor cores, 32-key tiles)
    for (int G : {1, 4})
      for (auto& sc : scenarios) {
        ErrStat st;
        runCase(dt, 256, G, 16, sc.make(), sc.name, st);
        report("attention", std::string(dtName(dt)) + " D256 G" + std::to_string(G) + " bs16 " + sc.name, 1, st);
      }
  for (int G : {1, 2}) {  // stories260K: head_dim 8, float32
    ErrStat st;
    runCase(KVSK_F32, 8, G, 16, {{0, 5}, {3, 1}, {0, 1}, {40, 30}, {600, 1}}, "f32 D8", st);
    report("attention", "f32 D8 G" + std::to_string(G) + " mixed", 1, st);
  }
  // fp8 (e4m3) cache: the dtype's tolerance against float64 over the dequantized cache.
  const KvFormat unitScales{KVSK_KV_FP8_E4M3, 1.f, 1.f}, smallScales{KVSK_KV_FP8_E4M3, 1.f / 64, 0.0123f};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128, 256})
      for (int G : D == 256 ? std::vector<int>{1, 4} : std::vector<int>{1, 4, 8})
        for (int bs : D == 128 ? std::vector<int>{16, 32} : std::vector<int>{16})
          for (auto& sc : scenarios) {
            const KvFormat& fmt = (G + bs / 16) % 2 ? unitScales : smallScales;
            ErrStat st;
            runCase(dt, D, G, bs, sc.make(), sc.name, st, fmt);
            report("attention", std::string(dtName(dt)) + " fp8 cache (scales " + std::to_string(fmt.kScale) + ", " +
                   std::to_string(fmt.vScale) + ") D" + std::to_string(D) + " G" + std::to_string(G) + " bs" +
                   std::to_string(bs) + " " + sc.name, 1, st);
          }
  // Batch invariance of the tensor-core kernels over both caches.
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128, 256})
      for (const KvFormat& fmt : {KvFormat{}, smallScales}) {
        const std::string why = decodeInvarianceCase(dt, D, 4, fmt, KVSK_ATTN_PREFILL_V1);
        reportBool("attention", std::string(dtName(dt)) + (fmt.fp8() ? " fp8 cache" : "") + " D" + std::to_string(D) +
                   " G4: decode rows bitwise alone = beside a prefill = merged (graphs)", 3, why.empty(), why);
      }
}

}  // namespace kt
