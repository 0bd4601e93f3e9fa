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
// graphed step does) give the same bits, for both cache dtypes; so does the single-launch decode kernel
// (decodeVersion 2), alone and graphed.
// The single-launch decode kernel (flash_decode_v2.cuh) runs every decode scenario of both grids beside the
// two-launch one (head_dim 64 and 128; it refuses 256): within the same tolerance of float64, and bitwise the
// two-launch kernel's output, which is what it promises. Beyond that, at G 4 and 16 over both caches: ring depths
// 2, 3 and 4, graphed plans (every tile split, split buckets of 8 and 64 partitions over contexts of at most 5),
// CUDA graph replays (2 and 3, each checked), all bitwise launch 0's, with every split counter zero after each
// launch; and its refusals (shapes, missing counters, bad fields).
#include <algorithm>

#include "attention_case.h"

namespace kt {

namespace {

// One launch of a case. version / stages: kvsk_attention_params.decodeVersion / decodeStages (version 2 with
// its split counters); graphed: as cuda_graphs.cc plans a decode step, every tile its own split slot and the
// splits rounded up to a power of two (at least minSplits); replays > 0: captured into a CUDA graph once and
// replayed that many times, every replay's output checked.
struct Launch {
  int version = 1, stages = 0;
  bool graphed = false;
  int minSplits = 1, replays = 0;
  std::string name() const {
    std::string n = version == 2 ? "v2" : "v1";
    if (stages) n += " stages " + std::to_string(stages);
    if (graphed) n += " graphed (splits >= " + std::to_string(minSplits) + ")";
    if (replays) n += " " + std::to_string(replays) + " graph replays";
    return n;
  }
};

// Per launch of a case: its error against the float64 reference (every replay's output), and "" or what made
// it differ from launch 0's bits (or left a split counter nonzero).
struct CaseResult {
  std::vector<ErrStat> err;
  std::vector<std::string> bits;
};

// Prefill-shaped launches run version 1 (the plan's KVSK_ATTN_PREFILL_V1).
CaseResult runCase(kvsk_dtype dt, int D, int G, int blockSize, const std::vector<Seq>& seqs, const std::string& scen,
                   const KvFormat& fmt = {}, const std::vector<Launch>& launches = {Launch{}}) {
  const AttnCase c(dt, D, G, blockSize, seqs, fmt);
  const int S = c.S, T = c.T, Hq = c.Hq, Hkv = c.Hkv;

  // The outputs of one launch (one per replay).
  auto run = [&](const Launch& L, std::string& why) {
    std::vector<int32_t> tileSeq, tileQ, tileSlot;
    kvsk_attention_plan_info info = c.plan(KVSK_ATTN_PREFILL_V1, tileSeq, tileQ, tileSlot);
    if (L.graphed) {
      if (!info.decode) throw std::runtime_error("a graphed launch of a step that is not decode");
      for (int i = 0; i < S; ++i) { tileSeq[i] = i; tileQ[i] = 0; tileSlot[i] = i; }
      int splits = 1;
      while (splits < std::max(info.maxSplits, L.minSplits)) splits *= 2;
      info = {S, 1, S, splits, 1, KVSK_ATTN_PREFILL_V1};
    }
    DevVec<int32_t> dTS(tileSeq), dTQ(tileQ), dSlot(tileSlot);
    const size_t slots = (size_t)std::max(1, info.numSplitSlots);
    DevVec<float> pOut(slots * Hq * info.maxSplits * D), pMax(slots * Hq * info.maxSplits), pSum(pMax.n);
    DevVec<unsigned> counters(std::vector<unsigned>(slots * Hkv, 0u));
    Buf out(dt, (size_t)T * Hq * D);
    kvsk_attention_params p{};
    c.into(p);
    p.out = out.dev;
    p.tileSeq = dTS.dev; p.tileQStart = dTQ.dev; p.tileSplitSlot = dSlot.dev;
    p.partialOut = pOut.dev; p.partialMax = pMax.dev; p.partialSum = pSum.dev;
    p.numTiles = info.numTiles; p.tokensPerTile = info.tokensPerTile; p.numSplitSlots = info.numSplitSlots;
    p.maxSplits = info.maxSplits; p.prefill = info.prefill;
    p.decodeVersion = L.version; p.decodeStages = L.stages; p.splitCounters = counters.dev;
    std::vector<std::vector<uint8_t>> outs;
    auto take = [&] {
      CK(cudaDeviceSynchronize());
      out.down();
      outs.push_back(out.host);
      out.poison();
      CK(cudaDeviceSynchronize());
      const std::vector<unsigned> left = counters.down();
      if (std::any_of(left.begin(), left.end(), [](unsigned n) { return n != 0; })) why += "a split counter left nonzero; ";
    };
    out.poison();
    if (L.replays == 0) {
      CK(kvsk_attention(&p, info.decode, 0));
      take();
    } else {
      cudaStream_t st;
      CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
      cudaGraph_t g = nullptr;
      cudaGraphExec_t exec = nullptr;
      CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      const cudaError_t launched = kvsk_attention(&p, info.decode, st);
      CK(cudaStreamEndCapture(st, &g));
      CK(launched);
      CK(cudaGraphInstantiate(&exec, g, 0));
      for (int r = 0; r < L.replays; ++r) {
        CK(cudaGraphLaunch(exec, st));
        CK(cudaStreamSynchronize(st));
        take();
      }
      CK(cudaGraphExecDestroy(exec));
      CK(cudaGraphDestroy(g));
      CK(cudaStreamDestroy(st));
    }
    return outs;
  };

  const std::vector<double> ref = c.reference();
  CaseResult res;
  std::vector<uint8_t> first;
  for (const Launch& L : launches) {
    std::string why;
    ErrStat stat;
    for (const std::vector<uint8_t>& o : run(L, why)) {
      c.check(o, ref, stat, scen + ", " + L.name());
      if (first.empty()) first = o;
      else if (o != first) why += "bits differ from " + launches[0].name() + "; ";
    }
    res.err.push_back(stat);
    res.bits.push_back(why);
  }
  return res;
}

std::vector<Seq> decodeBatch(int n, int maxCtx) {
  std::vector<Seq> v;
  for (int i = 0; i < n; ++i) v.push_back({irand(0, maxCtx - 1), 1});
  return v;
}

}  // namespace

// Rows for launch 0 of a case under `name` (as before v2), and for every other launch its error and whether it
// gave launch 0's bits.
void reportCase(const std::string& name, const std::vector<Launch>& launches, const CaseResult& r) {
  for (size_t i = 0; i < launches.size(); ++i) {
    const std::string n = i == 0 ? name : name + " " + launches[i].name();
    report("attention", n, 1, r.err[i]);
    if (i > 0 || !r.bits[i].empty())
      reportBool("attention", n + ": bits of " + launches[0].name(), 1, r.bits[i].empty(), r.bits[i]);
  }
}

// What decodeVersion 2 refuses, so that the two-launch kernel runs there: the shapes kvsk_attention_decode_v2_supported
// rejects (head_dim 256, float32, G > 16, a merge too large for shared memory) and a launch's invalid fields.
// Returns "" or what was wrong.
std::string decodeV2Refusals() {
  std::string why;
  struct Shape { kvsk_dtype dt; kvsk_kv_dtype kv; int D, Hq, Hkv, maxSplits, want; };
  for (const Shape& s : {Shape{KVSK_BF16, KVSK_KV_SAME, 128, 32, 8, 64, 1}, Shape{KVSK_F16, KVSK_KV_FP8_E4M3, 64, 32, 2, 64, 1},
                         Shape{KVSK_BF16, KVSK_KV_SAME, 256, 8, 2, 8, 0}, Shape{KVSK_F32, KVSK_KV_SAME, 64, 8, 2, 8, 0},
                         Shape{KVSK_BF16, KVSK_KV_SAME, 128, 34, 2, 8, 0}, Shape{KVSK_BF16, KVSK_KV_FP8_E4M3, 64, 32, 2, 4096, 0}})
    if (kvsk_attention_decode_v2_supported(s.dt, s.kv, s.D, s.Hq, s.Hkv, s.maxSplits) != s.want)
      why += "supported(" + std::string(dtName(s.dt)) + ", D " + std::to_string(s.D) + ", " + std::to_string(s.Hq) + "/" +
             std::to_string(s.Hkv) + " heads, " + std::to_string(s.maxSplits) + " splits) != " + std::to_string(s.want) + "; ";
  // These return before any launch: nothing is read.
  auto call = [](int D, int version, int stages, int slots) {
    kvsk_attention_params p{};
    p.numTiles = 1; p.tokensPerTile = 4; p.numSplitSlots = slots; p.maxSplits = 2; p.partitionSize = 128;
    p.numHeads = 8; p.numKvHeads = 2; p.headDim = D; p.blockSize = 16; p.scale = 0.125f; p.dtype = KVSK_BF16;
    p.decodeVersion = version; p.decodeStages = stages;
    const cudaError_t e = kvsk_attention(&p, 1, 0);
    cudaGetLastError();
    return e;
  };
  if (call(256, 2, 0, 0) != cudaErrorNotSupported) why += "head_dim 256 not refused; ";
  if (call(128, 2, 0, 1) != cudaErrorInvalidValue) why += "split slots without counters accepted; ";
  if (call(128, 3, 0, 0) != cudaErrorInvalidValue) why += "decodeVersion 3 accepted; ";
  if (call(128, 2, 5, 0) != cudaErrorInvalidValue) why += "a 5-stage ring accepted; ";
  return why;
}

void attentionTests() {
  // decode: every sequence one new token (the single-launch kernel, decodeVersion 2, runs there too).
  struct Scenario { std::string name; std::function<std::vector<Seq>()> make; bool decode; };
  const std::vector<Scenario> scenarios = {
      {"decode b256 ctx1-600", [] { auto v = decodeBatch(256, 600); v[0].cached = 0; return v; }, true},
      {"decode b1 ctx8192 + b8 ctx<=4096 (split-KV)", [] { auto v = decodeBatch(8, 4096); v.push_back({8191, 1}); return v; }, true},
      {"chunked prefill + prefix hits + decodes", [] {
         return std::vector<Seq>{{0, 1}, {0, 37}, {100, 200}, {1000, 513}, {5, 1}, {700, 1}, {31, 64}};
       }, false},
      {"64-token chunk at ctx 8192", [] { return std::vector<Seq>{{8128, 64}}; }, false},
  };
  const std::vector<Launch> v1Only = {Launch{}}, v1v2 = {Launch{}, Launch{2}};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128})
      for (int G : {1, 2, 4, 8})
        for (int bs : {16, 32}) {
          for (auto& sc : scenarios) {
            const std::vector<Launch>& launches = sc.decode ? v1v2 : v1Only;
            reportCase(std::string(dtName(dt)) + " D" + std::to_string(D) + " G" + std::to_string(G) + " bs" + std::to_string(bs) +
                       " " + sc.name, launches, runCase(dt, D, G, bs, sc.make(), sc.name, {}, launches));
          }
        }
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})  // head_dim 256 (tensor cores, 32-key tiles)
    for (int G : {1, 4})
      for (auto& sc : scenarios)
        reportCase(std::string(dtName(dt)) + " D256 G" + std::to_string(G) + " bs16 " + sc.name, v1Only,
                   runCase(dt, 256, G, 16, sc.make(), sc.name));
  for (int G : {1, 2})  // stories260K: head_dim 8, float32
    reportCase("f32 D8 G" + std::to_string(G) + " mixed", v1Only,
               runCase(KVSK_F32, 8, G, 16, {{0, 5}, {3, 1}, {0, 1}, {40, 30}, {600, 1}}, "f32 D8"));
  // fp8 (e4m3) cache: the dtype's tolerance against float64 over the dequantized cache.
  const KvFormat unitScales{KVSK_KV_FP8_E4M3, 1.f, 1.f}, smallScales{KVSK_KV_FP8_E4M3, 1.f / 64, 0.0123f};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128, 256})
      for (int G : D == 256 ? std::vector<int>{1, 4} : std::vector<int>{1, 4, 8})
        for (int bs : D == 128 ? std::vector<int>{16, 32} : std::vector<int>{16})
          for (auto& sc : scenarios) {
            const KvFormat& fmt = (G + bs / 16) % 2 ? unitScales : smallScales;
            const std::vector<Launch>& launches = sc.decode && D != 256 ? v1v2 : v1Only;
            reportCase(std::string(dtName(dt)) + " fp8 cache (scales " + std::to_string(fmt.kScale) + ", " +
                       std::to_string(fmt.vScale) + ") D" + std::to_string(D) + " G" + std::to_string(G) + " bs" +
                       std::to_string(bs) + " " + sc.name, launches, runCase(dt, D, G, bs, sc.make(), sc.name, fmt, launches));
          }
  // Batch invariance of the tensor-core kernels over both caches.
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128, 256})
      for (const KvFormat& fmt : {KvFormat{}, smallScales}) {
        const std::string why = decodeInvarianceCase(dt, D, 4, fmt, KVSK_ATTN_PREFILL_V1);
        reportBool("attention", std::string(dtName(dt)) + (fmt.fp8() ? " fp8 cache" : "") + " D" + std::to_string(D) +
                   " G4: decode rows bitwise alone = beside a prefill = merged (graphs) = v2 alone, graphed", 3, why.empty(), why);
      }
  // The single-launch decode kernel against the two-launch one on what only it varies: the ring's depth, the
  // grid's partition count (graph split buckets of 8 and 64 over contexts of at most 5 partitions), graph replays
  // (the split counters reused), and G 16 (the merge's chunks: 64 partitions of 16 heads exceed the ring). Every
  // launch gives launch 0's bits and stays within tolerance; the counters are zero after each.
  const std::vector<Launch> ringAndGraphs = {Launch{}, Launch{2, 2}, Launch{2, 3}, Launch{2, 4}, Launch{1, 0, true},
                                             Launch{2, 0, true}, Launch{2, 2, true, 1, 3}};
  const std::vector<Launch> splitBuckets = {Launch{}, Launch{2, 0, true, 8}, Launch{2, 0, true, 64}, Launch{2, 4, true, 64, 2}};
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (int D : {64, 128})
      for (const KvFormat& fmt : {KvFormat{}, smallScales})
        for (int G : {4, 16}) {
          const std::string name = std::string(dtName(dt)) + (fmt.fp8() ? " fp8 cache" : "") + " D" + std::to_string(D) +
                                   " G" + std::to_string(G) + " bs16 ";
          reportCase(name + scenarios[1].name, ringAndGraphs, runCase(dt, D, G, 16, scenarios[1].make(), scenarios[1].name, fmt, ringAndGraphs));
          const std::vector<Seq> short64 = decodeBatch(64, 600);
          reportCase(name + "decode b64 ctx<=600", splitBuckets, runCase(dt, D, G, 16, short64, "decode b64 ctx<=600", fmt, splitBuckets));
        }
  const std::string why = decodeV2Refusals();
  reportBool("attention", "v2 refuses head_dim 256, float32, G > 16, an oversized merge, no counters, version 3, 5 stages", 1,
             why.empty(), why);
}

}  // namespace kt
