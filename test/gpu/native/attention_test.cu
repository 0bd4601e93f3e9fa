// Paged attention against a naive float64 CPU reference over a grid: dtype {bf16, f16} x head_dim {64, 128}
// (and 256 at G 1, 4, block 16) — the tensor-core kernel
// x group {1, 2, 4, 8} x block size {16, 32} x scenarios (decode batch 256; decode 1 x 8k and 8 mixed up to
// 4k, split-KV over 128-key partitions, up to 64 of them; chunked prefill with prefix hits next to decodes;
// a 64-token chunk at the end of an 8k context), plus head_dim 8 / f32 (stories260K's shape). Physical blocks are shuffled; every cache slot no
// sequence owns holds NaN, so a read outside the block table or past the context poisons the output.
// Tolerance |out - ref| <= atol + rtol |ref|: f32 1e-5/1e-4, f16 2e-3/2e-3, bf16 1.6e-2/1.6e-2
// (one rounding of the output to the dtype dominates).
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
#include <numeric>

#include "harness.h"

namespace kt {

namespace {

struct Seq { int cached, qLen; };  // context after the step = cached + qLen

// The cache a case runs over: the query dtype's own, or e4m3 with the layer's two scales.
struct KvFormat {
  kvsk_kv_dtype kind = KVSK_KV_SAME;
  float kScale = 1.f, vScale = 1.f;
  bool fp8() const { return kind == KVSK_KV_FP8_E4M3; }
};

// K and V of one layer on the host and the device, in either format; get() is the dequantized value.
struct Cache {
  KvFormat f;
  Buf k, v;                            // same dtype
  std::vector<uint8_t> k8, v8;         // fp8 codes
  std::vector<double> kd, vd;          // fp8: their values times the scales (filled by up())
  DevVec<uint8_t> dk8, dv8;
  Cache(kvsk_dtype dt, size_t n, const KvFormat& fmt)
      : f(fmt), k(dt, fmt.fp8() ? 0 : n), v(dt, fmt.fp8() ? 0 : n), k8(fmt.fp8() ? n : 0, 0x7F), v8(k8.size(), 0x7F),
        dk8(k8.size() + 16), dv8(v8.size() + 16) {
    if (!fmt.fp8()) for (size_t i = 0; i < n; ++i) { k.set(i, NAN); v.set(i, NAN); }
  }
  void setK(size_t i, float x) { if (f.fp8()) k8[i] = e4m3Encode(x / f.kScale); else k.set(i, x); }
  void setV(size_t i, float x) { if (f.fp8()) v8[i] = e4m3Encode(x / f.vScale); else v.set(i, x); }
  double getK(size_t i) const { return f.fp8() ? kd[i] : k.get(i); }
  double getV(size_t i) const { return f.fp8() ? vd[i] : v.get(i); }
  void up() {
    if (!f.fp8()) { k.up(); v.up(); return; }
    kd.resize(k8.size());
    vd.resize(v8.size());
    for (size_t i = 0; i < k8.size(); ++i) { kd[i] = e4m3Value(k8[i]) * (double)f.kScale; vd[i] = e4m3Value(v8[i]) * (double)f.vScale; }
    CK(cudaMemcpy(dk8.dev, k8.data(), k8.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dv8.dev, v8.data(), v8.size(), cudaMemcpyHostToDevice));
  }
  void into(kvsk_attention_params& p) const {
    p.kCache = f.fp8() ? (void*)dk8.dev : k.dev;
    p.vCache = f.fp8() ? (void*)dv8.dev : v.dev;
    p.cacheDtype = f.kind; p.kScale = f.kScale; p.vScale = f.vScale;
  }
};

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

CaseResult runCase(kvsk_dtype dt, int D, int G, int blockSize, const std::vector<Seq>& seqs, const std::string& scen,
                   const KvFormat& fmt = {}, const std::vector<Launch>& launches = {Launch{}}) {
  const int Hkv = 2, Hq = Hkv * G, S = (int)seqs.size();
  std::vector<int32_t> qs(S + 1, 0), ctx(S);
  int maxBlocks = 1, totalBlocks = 0;
  for (int s = 0; s < S; ++s) {
    qs[s + 1] = qs[s] + seqs[s].qLen;
    ctx[s] = seqs[s].cached + seqs[s].qLen;
    const int nb = (ctx[s] + blockSize - 1) / blockSize;
    maxBlocks = std::max(maxBlocks, nb);
    totalBlocks += nb;
  }
  const int T = qs[S], numBlocks = totalBlocks + 3;
  std::vector<int> perm(numBlocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng());
  std::vector<int32_t> table((size_t)S * maxBlocks, 0);
  int next = 0;
  const size_t slotElems = (size_t)Hkv * D;
  Cache kv(dt, (size_t)numBlocks * blockSize * slotElems, fmt);
  Buf q(dt, (size_t)T * Hq * D);
  for (int s = 0; s < S; ++s)
    for (int b = 0; b * blockSize < ctx[s]; ++b) table[(size_t)s * maxBlocks + b] = perm[next++];
  auto slotOf = [&](int s, int key) { return (size_t)table[(size_t)s * maxBlocks + key / blockSize] * blockSize + key % blockSize; };
  for (int s = 0; s < S; ++s)
    for (int key = 0; key < ctx[s]; ++key)
      for (size_t e = 0; e < slotElems; ++e) {
        kv.setK(slotOf(s, key) * slotElems + e, uni(-1, 1));
        kv.setV(slotOf(s, key) * slotElems + e, uni(-1, 1));
      }
  for (size_t i = 0; i < q.n; ++i) q.set(i, uni(-2, 2));
  kv.up(); q.up();
  DevVec<int32_t> dQs(qs), dCtx(ctx), dTable(table);
  const int partition = 128;  // the CUDA backend's partition for contexts up to 8k

  // The outputs of one launch (one per replay).
  auto run = [&](const Launch& L, std::string& why) {
    std::vector<int32_t> tileSeq(T), tileQ(T), tileSlot(T);
    kvsk_attention_plan_info info{};
    if (kvsk_attention_plan(qs.data(), ctx.data(), S, Hq, Hkv, D, dt, partition, tileSeq.data(), tileQ.data(), tileSlot.data(), T, &info) != 0)
      throw std::runtime_error("attention plan failed");
    if (L.graphed) {
      if (!info.decode) throw std::runtime_error("a graphed launch of a step that is not decode");
      for (int i = 0; i < S; ++i) { tileSeq[i] = i; tileQ[i] = 0; tileSlot[i] = i; }
      int splits = 1;
      while (splits < std::max(info.maxSplits, L.minSplits)) splits *= 2;
      info = {S, 1, S, splits, 1};
    }
    DevVec<int32_t> dTS(tileSeq), dTQ(tileQ), dSlot(tileSlot);
    const size_t slots = (size_t)std::max(1, info.numSplitSlots);
    DevVec<float> pOut(slots * Hq * info.maxSplits * D), pMax(slots * Hq * info.maxSplits), pSum(pMax.n);
    DevVec<unsigned> counters(std::vector<unsigned>(slots * Hkv, 0u));
    Buf out(dt, (size_t)T * Hq * D);
    kvsk_attention_params p{};
    p.q = q.dev; p.out = out.dev;
    kv.into(p);
    p.blockTables = dTable.dev; p.queryStart = dQs.dev; p.contextLens = dCtx.dev;
    p.tileSeq = dTS.dev; p.tileQStart = dTQ.dev; p.tileSplitSlot = dSlot.dev;
    p.partialOut = pOut.dev; p.partialMax = pMax.dev; p.partialSum = pSum.dev;
    p.numTiles = info.numTiles; p.tokensPerTile = info.tokensPerTile; p.numSplitSlots = info.numSplitSlots;
    p.maxSplits = info.maxSplits; p.partitionSize = partition;
    p.numHeads = Hq; p.numKvHeads = Hkv; p.headDim = D; p.blockSize = blockSize; p.maxBlocksPerSeq = maxBlocks;
    p.scale = 1.f / std::sqrt((float)D); p.dtype = dt;
    p.decodeVersion = L.version; p.decodeStages = L.stages; p.splitCounters = counters.dev;
    std::vector<std::vector<uint8_t>> outs;
    auto take = [&] {
      CK(cudaDeviceSynchronize());
      out.down();
      outs.push_back(out.host);
      out.poison();
      CK(cudaDeviceSynchronize());
      const std::vector<unsigned> left = counters.down();
      if (std::any_of(left.begin(), left.end(), [](unsigned c) { return c != 0; })) why += "a split counter left nonzero; ";
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

  const double atol = dt == KVSK_F32 ? 1e-5 : dt == KVSK_F16 ? 2e-3 : 1.6e-2, rtol = dt == KVSK_F32 ? 1e-4 : atol;
  // The float64 reference, [T][Hq][D].
  std::vector<double> ref((size_t)T * Hq * D);
  parallelFor(T, [&](int t) {
    const int s = int(std::upper_bound(qs.begin(), qs.end(), t) - qs.begin()) - 1;
    const int pos = ctx[s] - seqs[s].qLen + (t - qs[s]);
    std::vector<double> sc(pos + 1), o(D);
    for (int h = 0; h < Hq; ++h) {
      const int kvh = h / G;
      double mx = -1e300;
      for (int key = 0; key <= pos; ++key) {
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += (double)q.get(((size_t)t * Hq + h) * D + d) * kv.getK(slotOf(s, key) * slotElems + kvh * D + d);
        sc[key] = dot / std::sqrt((double)D);
        mx = std::max(mx, sc[key]);
      }
      double sum = 0;
      std::fill(o.begin(), o.end(), 0.0);
      for (int key = 0; key <= pos; ++key) {
        const double w = std::exp(sc[key] - mx);
        sum += w;
        for (int d = 0; d < D; ++d) o[d] += w * kv.getV(slotOf(s, key) * slotElems + kvh * D + d);
      }
      for (int d = 0; d < D; ++d) ref[((size_t)t * Hq + h) * D + d] = o[d] / sum;
    }
  });
  CaseResult res;
  std::vector<uint8_t> first;
  for (const Launch& L : launches) {
    std::string why;
    const std::vector<std::vector<uint8_t>> outs = run(L, why);
    ErrStat stat;
    for (const std::vector<uint8_t>& o : outs) {
      std::vector<ErrStat> per(T);
      parallelFor(T, [&](int t) {
        for (size_t e = (size_t)t * Hq * D; e < (size_t)(t + 1) * Hq * D; ++e) per[t].add(load(dt, o.data(), e), ref[e], atol, rtol);
      });
      for (auto& e : per) {
        stat.worst = std::max(stat.worst, e.worst); stat.maxAbs = std::max(stat.maxAbs, e.maxAbs);
        stat.bad += e.bad; stat.n += e.n;
      }
      if (first.empty()) first = o;
      else if (o != first) why += "bits differ from " + launches[0].name() + "; ";
    }
    if (!stat.ok())
      std::printf("  attention mismatch: %s%s D=%d G=%d bs=%d %s, %s\n", dtName(dt), fmt.fp8() ? " fp8 cache" : "", D, G,
                  blockSize, scen.c_str(), L.name().c_str());
    res.err.push_back(stat);
    res.bits.push_back(why);
  }
  return res;
}

// Decode rows (one split over 24 partitions) alone, beside a 70-token chunk, and all through the merge: the
// same bits. Returns "" or what differed.
std::string invarianceCase(kvsk_dtype dt, int D, int G, const KvFormat& fmt) {
  const int Hkv = 2, Hq = Hkv * G, bs = 16, partition = 128;
  const std::vector<Seq> seqs = {{0, 1}, {99, 1}, {700, 1}, {3000, 1}, {40, 70}};  // 4 decodes, then the chunk
  const int S = (int)seqs.size(), nDec = 4;
  std::vector<int32_t> qs(S + 1, 0), ctx(S);
  int maxBlocks = 1;
  for (int s = 0; s < S; ++s) {
    qs[s + 1] = qs[s] + seqs[s].qLen;
    ctx[s] = seqs[s].cached + seqs[s].qLen;
    maxBlocks = std::max(maxBlocks, (ctx[s] + bs - 1) / bs);
  }
  const int T = qs[S], numBlocks = S * maxBlocks;
  std::vector<int32_t> table((size_t)S * maxBlocks);
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), rng());
  const size_t slotElems = (size_t)Hkv * D;
  Cache kv(dt, (size_t)numBlocks * bs * slotElems, fmt);
  for (size_t i = 0; i < (size_t)numBlocks * bs * slotElems; ++i) { kv.setK(i, uni(-1, 1)); kv.setV(i, uni(-1, 1)); }
  Buf q(dt, (size_t)T * Hq * D);
  for (size_t i = 0; i < q.n; ++i) q.set(i, uni(-2, 2));
  kv.up(); q.up();
  DevVec<int32_t> dTable(table);
  // Output of the decode tokens for a launch over the first nSeq sequences; graphed: every tile split; version:
  // decodeVersion (2: the single-launch kernel).
  auto run = [&](int nSeq, bool graphed, int version) {
    const int nTok = qs[nSeq];
    std::vector<int32_t> qsN(qs.begin(), qs.begin() + nSeq + 1), ctxN(ctx.begin(), ctx.begin() + nSeq);
    std::vector<int32_t> tileSeq(nTok), tileQ(nTok), tileSlot(nTok);
    kvsk_attention_plan_info info{};
    if (kvsk_attention_plan(qsN.data(), ctxN.data(), nSeq, Hq, Hkv, D, dt, partition, tileSeq.data(), tileQ.data(),
                            tileSlot.data(), nTok, &info) != 0)
      throw std::runtime_error("attention plan failed");
    if (graphed) {  // as cuda_graphs.cc: one tile per sequence, each its own split slot, splits to a power of two
      for (int i = 0; i < nSeq; ++i) { tileSeq[i] = i; tileQ[i] = 0; tileSlot[i] = i; }
      int splits = 1;
      while (splits < info.maxSplits) splits *= 2;
      info = {nSeq, 1, nSeq, splits, 1};
    }
    DevVec<int32_t> dQs(qsN), dCtx(ctxN), dTS(tileSeq), dTQ(tileQ), dSlot(tileSlot);
    DevVec<float> pOut((size_t)std::max(1, info.numSplitSlots) * Hq * info.maxSplits * D),
        pMax((size_t)std::max(1, info.numSplitSlots) * Hq * info.maxSplits), pSum(pMax.n);
    DevVec<unsigned> counters(std::vector<unsigned>((size_t)std::max(1, info.numSplitSlots) * Hkv, 0u));
    Buf out(dt, (size_t)nTok * Hq * D);
    out.poison();
    kvsk_attention_params p{};
    p.q = q.dev; p.out = out.dev;
    kv.into(p);
    p.blockTables = dTable.dev; p.queryStart = dQs.dev; p.contextLens = dCtx.dev;
    p.tileSeq = dTS.dev; p.tileQStart = dTQ.dev; p.tileSplitSlot = dSlot.dev;
    p.partialOut = pOut.dev; p.partialMax = pMax.dev; p.partialSum = pSum.dev;
    p.numTiles = info.numTiles; p.tokensPerTile = info.tokensPerTile; p.numSplitSlots = info.numSplitSlots;
    p.maxSplits = info.maxSplits; p.partitionSize = partition;
    p.numHeads = Hq; p.numKvHeads = Hkv; p.headDim = D; p.blockSize = bs; p.maxBlocksPerSeq = maxBlocks;
    p.scale = 1.f / std::sqrt((float)D); p.dtype = dt;
    p.decodeVersion = version; p.splitCounters = counters.dev;
    CK(kvsk_attention(&p, info.decode, 0));
    CK(cudaDeviceSynchronize());
    out.down();
    return std::vector<uint8_t>(out.host.begin(), out.host.begin() + (size_t)nDec * Hq * D * dtSize(dt));
  };
  const std::vector<uint8_t> alone = run(nDec, false, 1), mixed = run(S, false, 1), graphed = run(nDec, true, 1);
  std::string why;
  if (mixed != alone) why += "decode vs mixed differ; ";
  if (graphed != alone) why += "decode vs graphed (merged) differ; ";
  if (kvsk_attention_decode_v2_supported(dt, fmt.kind, D, Hq, Hkv, 64)) {
    if (run(nDec, false, 2) != alone) why += "v2 decode vs v1 differ; ";
    if (run(nDec, true, 2) != alone) why += "v2 graphed vs v1 differ; ";
  }
  size_t nan = 0;
  for (size_t i = 0; i < alone.size() / dtSize(dt); ++i) nan += std::isnan(load(dt, alone.data(), i));
  if (nan) why += std::to_string(nan) + " NaN outputs; ";
  return why;
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
        const std::string why = invarianceCase(dt, D, 4, fmt);
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
