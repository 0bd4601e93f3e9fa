// Prefill attention version 2 (kvsk_attn_prefill KVSK_ATTN_PREFILL_V2, kernels/flash_prefill.cuh) beside
// version 1, on the attention suite's cases (attention_case.h: float64 reference and tolerances, shuffled
// blocks, NaN in every unowned cache slot, poisoned output):
// - bf16, f16 x head_dim 64, 128 x (G, block size) (1, 16) (2, 32) (3, 16) (4, 16) (4, 32) (8, 16) (16, 32) x
//   {chunked prefill with prefix hits next to decodes; a 64-token chunk at context 8192; one 1000-token
//   prompt; five prompts after unaligned cached prefixes, one of them a decode and one a 512-token chunk
//   after 1536}: both versions over the same inputs within tolerance of float64, and version 2 bitwise
//   version 1 (G 3: tiles of 42 tokens, padding rows in every tile);
// - the same over an fp8 cache (G 1, 4, 8, block 16; scales 1 and 1/64, 0.0123);
// - decode rows bitwise the same alone (the decode kernel), beside a chunk on version 2, and merged;
// - the plan: version 2's tiles hold 128 / G tokens, cover every (sequence, first token) once, longest first;
//   a decode plan, head_dim 256 and float32 fall back to version 1;
// - refusals: version 2 launched at head_dim 256, a version-2 plan launched as version 1, an unknown version;
// - kvsk_attention_prefill_v2_smem: what a CTA needs at head_dim 64 and 128, 0 where version 2 does not serve.
#include <map>

#include "attention_case.h"

namespace kt {

namespace {

struct Scenario { std::string name; std::vector<Seq> seqs; };

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> v = {
      {"chunked prefill + prefix hits + decodes", {{0, 1}, {0, 37}, {100, 200}, {1000, 513}, {5, 1}, {700, 1}, {31, 64}}},
      {"64-token chunk at ctx 8192", {{8128, 64}}},
      {"prefill 1 x 1000", {{0, 1000}}},
      {"5 prompts after unaligned prefixes", {{0, 300}, {17, 129}, {333, 64}, {64, 1}, {1536, 512}}},
  };
  return v;
}

std::string caseName(kvsk_dtype dt, const KvFormat& fmt, int D, int G, int bs, const std::string& scen) {
  std::string fp8;
  if (fmt.fp8()) fp8 = " fp8 cache (scales " + std::to_string(fmt.kScale) + ", " + std::to_string(fmt.vScale) + ")";
  return std::string(dtName(dt)) + fp8 + " D" + std::to_string(D) + " G" + std::to_string(G) + " bs" + std::to_string(bs) + " " + scen;
}

// Both versions on one case: each against float64, and version 2's bits against version 1's.
void versionsCase(kvsk_dtype dt, int D, int G, int bs, const Scenario& sc, const KvFormat& fmt = {}) {
  const AttnCase c(dt, D, G, bs, sc.seqs, fmt);
  const std::string name = caseName(dt, fmt, D, G, bs, sc.name);
  kvsk_attention_plan_info i1{}, i2{};
  const std::vector<uint8_t> v1 = c.run(KVSK_ATTN_PREFILL_V1, &i1), v2 = c.run(KVSK_ATTN_PREFILL_V2, &i2);
  ErrStat s1, s2;
  c.check(v1, s1, sc.name + " (v1)");
  c.check(v2, s2, sc.name + " (v2)");
  report("attn-prefill", name + " v1", 1, s1);
  report("attn-prefill", name + " v2", 1, s2, std::to_string(i2.numTiles) + " tiles of " + std::to_string(i2.tokensPerTile) + " tokens");
  size_t differ = 0;
  for (size_t i = 0; i < v1.size(); i += dtSize(dt)) differ += std::memcmp(&v1[i], &v2[i], dtSize(dt)) != 0;
  const bool planned = i2.prefill == KVSK_ATTN_PREFILL_V2 && i1.prefill == KVSK_ATTN_PREFILL_V1;
  reportBool("attn-prefill", name + " v2 bitwise v1", 1, planned && differ == 0,
             (planned ? "" : "the plan did not pick version 2; ") + std::to_string(differ) + " of " +
                 std::to_string(v1.size() / dtSize(dt)) + " outputs differ");
}

// Version 2's plan of the last scenario: tile shape, coverage, and the longest-first order.
std::string planCheck(kvsk_dtype dt, int D, int G) {
  const AttnCase c(dt, D, G, 16, scenarios().back().seqs);
  std::vector<int32_t> tileSeq, tileQ, tileSlot;
  const kvsk_attention_plan_info info = c.plan(KVSK_ATTN_PREFILL_V2, tileSeq, tileQ, tileSlot);
  std::string why;
  if (info.prefill != KVSK_ATTN_PREFILL_V2 || info.decode) why += "not a version-2 plan; ";
  const int tpt = 128 / G;
  if (info.tokensPerTile != tpt) why += "tokensPerTile " + std::to_string(info.tokensPerTile) + "; ";
  std::map<std::pair<int, int>, int> seen;
  int64_t prev = INT64_MAX;
  for (int i = 0; i < info.numTiles; ++i) {
    const int s = tileSeq[i], qLen = c.seqs[s].qLen;
    ++seen[{s, tileQ[i]}];
    const int64_t keys = tileSlot[i] >= 0 ? std::min(128, c.ctx[s]) : c.seqs[s].cached + tileQ[i] + std::min(tpt, qLen - tileQ[i]);
    if (keys > prev) why += "tile " + std::to_string(i) + " walks more keys than tile " + std::to_string(i - 1) + "; ";
    prev = keys;
  }
  size_t expected = 0;
  for (int s = 0; s < c.S; ++s)
    for (int t0 = 0; t0 < c.seqs[s].qLen; t0 += tpt, ++expected)
      if (seen[{s, t0}] != 1) why += "sequence " + std::to_string(s) + " token " + std::to_string(t0) + " tiled " + std::to_string(seen[{s, t0}]) + " times; ";
  if (seen.size() != expected) why += std::to_string(seen.size()) + " distinct tiles, " + std::to_string(expected) + " expected; ";
  return why;
}

// Version 2 asked where it does not serve: the plan says version 1, with version 1's tiles and bits.
std::string fallbackCheck(kvsk_dtype dt, int D, const std::vector<Seq>& seqs) {
  const AttnCase c(dt, D, 2, 16, seqs);
  kvsk_attention_plan_info i1{}, i2{};
  const std::vector<uint8_t> v1 = c.run(KVSK_ATTN_PREFILL_V1, &i1), v2 = c.run(KVSK_ATTN_PREFILL_V2, &i2);
  std::string why;
  if (i2.prefill != KVSK_ATTN_PREFILL_V1) why += "the plan says version 2; ";
  if (i2.tokensPerTile != i1.tokensPerTile || i2.numTiles != i1.numTiles) why += "tiles differ from version 1's; ";
  if (v1 != v2) why += "outputs differ; ";
  return why;
}

void refusals() {
  const std::vector<Seq> prompt = {{0, 200}};
  const AttnCase d256(KVSK_BF16, 256, 4, 16, prompt), d128(KVSK_BF16, 128, 4, 16, prompt);
  const kvsk_attn_prefill v1 = KVSK_ATTN_PREFILL_V1, v2 = KVSK_ATTN_PREFILL_V2, unknown = (kvsk_attn_prefill)7;
  auto name = [](cudaError_t e) { return std::string(cudaGetErrorName(e)); };
  cudaError_t e = d256.launch(v1, nullptr, nullptr, &v2);
  reportBool("attn-prefill", "version 2 launched at head_dim 256: cudaErrorNotSupported", 1, e == cudaErrorNotSupported, name(e));
  e = d128.launch(v2, nullptr, nullptr, &v1);
  reportBool("attn-prefill", "a version-2 plan (128-row tiles) launched as version 1: cudaErrorInvalidValue", 1,
             e == cudaErrorInvalidValue, name(e));
  e = d128.launch(v1, nullptr, nullptr, &unknown);
  reportBool("attn-prefill", "prefill 7 launched: cudaErrorInvalidValue", 1, e == cudaErrorInvalidValue, name(e));
  const int32_t qs[2] = {0, 200}, ctx[1] = {200};
  std::vector<int32_t> a(200), b(200), c(200);
  kvsk_attention_plan_info info{};
  const int rc = kvsk_attention_plan(qs, ctx, 1, 8, 2, 128, KVSK_BF16, 128, unknown, a.data(), b.data(), c.data(), 200, &info);
  reportBool("attn-prefill", "prefill 7 planned: -1", 1, rc == -1, "returned " + std::to_string(rc));
  CK(cudaGetLastError());
}

// KVSK_ATTN_PREFILL_AUTO resolves per step: version 2 when the longest query holds KVSK_ATTN_PREFILL_AUTO_MIN_QUERY
// tokens or more and version 2 serves the shape, version 1 otherwise (decode plans stay decode plans).
void autoPlans() {
  struct Want { const char* what; std::vector<int32_t> qLens; int D; kvsk_attn_prefill prefill; int decode; };
  const int n = KVSK_ATTN_PREFILL_AUTO_MIN_QUERY;
  const std::vector<Want> wants = {
      {"one query of the threshold", {n}, 128, KVSK_ATTN_PREFILL_V2, 0},
      {"one query a token short", {n - 1}, 128, KVSK_ATTN_PREFILL_V1, 0},
      {"short queries only", {5, 300, 700}, 128, KVSK_ATTN_PREFILL_V1, 0},
      {"a long query beside decodes", {1, 2 * n, 1, 1}, 128, KVSK_ATTN_PREFILL_V2, 0},
      {"decodes only", {1, 1, 1}, 128, KVSK_ATTN_PREFILL_V1, 1},
      {"a long query at head_dim 256 (not served)", {2 * n}, 256, KVSK_ATTN_PREFILL_V1, 0},
  };
  std::string why;
  for (const Want& w : wants) {
    std::vector<int32_t> qs = {0}, ctx;
    for (int32_t q : w.qLens) {
      qs.push_back(qs.back() + q);
      ctx.push_back(q + 40);  // 40 cached tokens before each query
    }
    const int cap = qs.back() + 8;
    std::vector<int32_t> a(cap), b(cap), c(cap);
    kvsk_attention_plan_info info{};
    const int rc = kvsk_attention_plan(qs.data(), ctx.data(), (int)w.qLens.size(), 8, 2, w.D, KVSK_BF16, 128,
                                       KVSK_ATTN_PREFILL_AUTO, a.data(), b.data(), c.data(), cap, &info);
    if (rc != 0) why += std::string(w.what) + ": returned " + std::to_string(rc) + "; ";
    else if (info.prefill != w.prefill || info.decode != w.decode)
      why += std::string(w.what) + ": planned version " + std::to_string(info.prefill + 1) + (info.decode ? " (decode)" : "") +
             ", want " + std::to_string(w.prefill + 1) + (w.decode ? " (decode)" : "") + "; ";
  }
  reportBool("attn-prefill", "KVSK_ATTN_PREFILL_AUTO: version 2 from the threshold query length, version 1 below",
             (int)wants.size(), why.empty(), why);
  const std::vector<Seq> prompt = {{0, 200}};
  const AttnCase d128(KVSK_BF16, 128, 4, 16, prompt);
  const kvsk_attn_prefill v1 = KVSK_ATTN_PREFILL_V1, automatic = KVSK_ATTN_PREFILL_AUTO;
  const cudaError_t e = d128.launch(v1, nullptr, nullptr, &automatic);
  reportBool("attn-prefill", "a launch asked for AUTO (the plan resolves it): cudaErrorInvalidValue", 1,
             e == cudaErrorInvalidValue, cudaGetErrorName(e));
  CK(cudaGetLastError());
}

void smemSizes() {
  struct Want { kvsk_dtype dt; kvsk_kv_dtype kv; int D, Hq, Hkv; size_t bytes; };
  // 2-byte operands, rows of D + 8: Q's 128 rows and the two-stage K/V ring of 64 keys; over fp8 one converted
  // K/V tile and the e4m3 ring of rows of D + 16 bytes.
  const std::vector<Want> wants = {
      {KVSK_BF16, KVSK_KV_SAME, 128, 32, 8, 2 * 136 * (128 + 256)},
      {KVSK_F16, KVSK_KV_FP8_E4M3, 128, 32, 8, 2 * 136 * (128 + 128) + 4 * 64 * 144},
      {KVSK_BF16, KVSK_KV_SAME, 64, 8, 2, 2 * 72 * (128 + 256)},
      {KVSK_BF16, KVSK_KV_FP8_E4M3, 64, 8, 2, 2 * 72 * (128 + 128) + 4 * 64 * 80},
      {KVSK_BF16, KVSK_KV_SAME, 256, 32, 8, 0},
      {KVSK_F32, KVSK_KV_SAME, 128, 32, 8, 0},
      {KVSK_BF16, KVSK_KV_SAME, 128, 64, 2, 0},  // G 32: no tensor-core kernel
  };
  std::string why;
  for (const Want& w : wants) {
    const size_t got = kvsk_attention_prefill_v2_smem(w.dt, w.kv, w.D, w.Hq, w.Hkv);
    if (got != w.bytes)
      why += std::string(dtName(w.dt)) + (w.kv == KVSK_KV_FP8_E4M3 ? " fp8" : "") + " D" + std::to_string(w.D) + " G" +
             std::to_string(w.Hq / w.Hkv) + ": " + std::to_string(got) + " bytes, want " + std::to_string(w.bytes) + "; ";
  }
  reportBool("attn-prefill", "kvsk_attention_prefill_v2_smem", (int)wants.size(), why.empty(), why);
}

}  // namespace

void attentionPrefillTests() {
  const std::vector<std::pair<int, int>> groups = {{1, 16}, {2, 32}, {3, 16}, {4, 16}, {4, 32}, {8, 16}, {16, 32}};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128})
      for (const auto& [G, bs] : groups)
        for (const Scenario& sc : scenarios()) versionsCase(dt, D, G, bs, sc);
  const KvFormat unitScales{KVSK_KV_FP8_E4M3, 1.f, 1.f}, smallScales{KVSK_KV_FP8_E4M3, 1.f / 64, 0.0123f};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128})
      for (int G : {1, 4, 8})
        for (const Scenario& sc : scenarios()) versionsCase(dt, D, G, 16, sc, G == 4 ? unitScales : smallScales);
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128})
      for (const KvFormat& fmt : {KvFormat{}, smallScales}) {
        const std::string why = decodeInvarianceCase(dt, D, 4, fmt, KVSK_ATTN_PREFILL_V2);
        reportBool("attn-prefill", std::string(dtName(dt)) + (fmt.fp8() ? " fp8 cache" : "") + " D" + std::to_string(D) +
                   " G4: decode rows bitwise alone = beside a chunk on version 2 = merged", 3, why.empty(), why);
      }
  for (int G : {1, 3, 4, 16}) {
    const std::string why = planCheck(KVSK_BF16, 128, G);
    reportBool("attn-prefill", "version 2's plan, G" + std::to_string(G) + ": 128-row tiles, each once, longest first", 1,
               why.empty(), why);
  }
  const std::vector<Seq> mixed = {{0, 5}, {3, 1}, {40, 30}, {600, 1}};
  for (const auto& [dt, D, what] : {std::tuple{KVSK_BF16, 256, "bf16 D256"}, std::tuple{KVSK_F32, 8, "f32 D8"}}) {
    const std::string why = fallbackCheck(dt, D, mixed);
    reportBool("attn-prefill", std::string(what) + ": version 2 asked, version 1 planned and run", 1, why.empty(), why);
  }
  {
    const std::string why = fallbackCheck(KVSK_BF16, 128, {{10, 1}, {300, 1}});
    reportBool("attn-prefill", "a decode plan: version 2 asked, the decode kernel runs", 1, why.empty(), why);
  }
  refusals();
  autoPlans();
  smemSizes();
}

}  // namespace kt
