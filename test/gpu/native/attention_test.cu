// Paged attention against a naive float64 CPU reference over a grid: dtype {bf16, f16} x head_dim {64, 128}
// (and 256 at G 1, 4, block 16) — the tensor-core kernel
// x group {1, 2, 4, 8} x block size {16, 32} x scenarios (decode batch 256; decode 1 x 8k and 8 mixed up to
// 4k, split-KV over 128-key partitions, up to 64 of them; chunked prefill with prefix hits next to decodes;
// a 64-token chunk at the end of an 8k context), plus head_dim 8 / f32 (stories260K's shape). Physical blocks are shuffled; every cache slot no
// sequence owns holds NaN, so a read outside the block table or past the context poisons the output.
// Tolerance |out - ref| <= atol + rtol |ref|: f32 1e-5/1e-4, f16 2e-3/2e-3, bf16 1.6e-2/1.6e-2
// (one rounding of the output to the dtype dominates).
#include <algorithm>
#include <numeric>

#include "harness.h"

namespace kt {

namespace {

struct Seq { int cached, qLen; };  // context after the step = cached + qLen

void runCase(kvsk_dtype dt, int D, int G, int blockSize, const std::vector<Seq>& seqs, const std::string& scen,
             ErrStat& stat) {
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
  Buf k(dt, (size_t)numBlocks * blockSize * slotElems), v(dt, k.n), q(dt, (size_t)T * Hq * D), out(dt, q.n);
  for (size_t i = 0; i < k.n; ++i) { k.set(i, NAN); v.set(i, NAN); }
  for (int s = 0; s < S; ++s)
    for (int b = 0; b * blockSize < ctx[s]; ++b) table[(size_t)s * maxBlocks + b] = perm[next++];
  auto slotOf = [&](int s, int key) { return (size_t)table[(size_t)s * maxBlocks + key / blockSize] * blockSize + key % blockSize; };
  for (int s = 0; s < S; ++s)
    for (int key = 0; key < ctx[s]; ++key)
      for (size_t e = 0; e < slotElems; ++e) {
        k.set(slotOf(s, key) * slotElems + e, uni(-1, 1));
        v.set(slotOf(s, key) * slotElems + e, uni(-1, 1));
      }
  for (size_t i = 0; i < q.n; ++i) q.set(i, uni(-2, 2));
  k.up(); v.up(); q.up(); out.poison();

  std::vector<int32_t> tileSeq(T), tileQ(T), tileSlot(T);
  kvsk_attention_plan_info info{};
  const int partition = 128;  // the CUDA backend's partition for contexts up to 8k
  if (kvsk_attention_plan(qs.data(), ctx.data(), S, Hq, Hkv, D, dt, partition, tileSeq.data(), tileQ.data(), tileSlot.data(), T, &info) != 0)
    throw std::runtime_error("attention plan failed");
  DevVec<int32_t> dQs(qs), dCtx(ctx), dTable(table), dTS(tileSeq), dTQ(tileQ), dSlot(tileSlot);
  DevVec<float> pOut((size_t)std::max(1, info.numSplitSlots) * Hq * info.maxSplits * D),
      pMax((size_t)std::max(1, info.numSplitSlots) * Hq * info.maxSplits), pSum(pMax.n);
  kvsk_attention_params p{};
  p.q = q.dev; p.kCache = k.dev; p.vCache = v.dev; p.out = out.dev;
  p.blockTables = dTable.dev; p.queryStart = dQs.dev; p.contextLens = dCtx.dev;
  p.tileSeq = dTS.dev; p.tileQStart = dTQ.dev; p.tileSplitSlot = dSlot.dev;
  p.partialOut = pOut.dev; p.partialMax = pMax.dev; p.partialSum = pSum.dev;
  p.numTiles = info.numTiles; p.tokensPerTile = info.tokensPerTile; p.numSplitSlots = info.numSplitSlots;
  p.maxSplits = info.maxSplits; p.partitionSize = partition;
  p.numHeads = Hq; p.numKvHeads = Hkv; p.headDim = D; p.blockSize = blockSize; p.maxBlocksPerSeq = maxBlocks;
  p.scale = 1.f / std::sqrt((float)D); p.dtype = dt;
  CK(kvsk_attention(&p, info.decode, 0));
  CK(cudaDeviceSynchronize());
  out.down();

  const double atol = dt == KVSK_F32 ? 1e-5 : dt == KVSK_F16 ? 2e-3 : 1.6e-2, rtol = dt == KVSK_F32 ? 1e-4 : atol;
  std::vector<ErrStat> per(T);
  parallelFor(T, [&](int t) {
    const int s = int(std::upper_bound(qs.begin(), qs.end(), t) - qs.begin()) - 1;
    const int pos = ctx[s] - seqs[s].qLen + (t - qs[s]);
    std::vector<double> sc(pos + 1), o(D);
    for (int h = 0; h < Hq; ++h) {
      const int kvh = h / G;
      double mx = -1e300;
      for (int key = 0; key <= pos; ++key) {
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += (double)q.get(((size_t)t * Hq + h) * D + d) * k.get(slotOf(s, key) * slotElems + kvh * D + d);
        sc[key] = dot / std::sqrt((double)D);
        mx = std::max(mx, sc[key]);
      }
      double sum = 0;
      std::fill(o.begin(), o.end(), 0.0);
      for (int key = 0; key <= pos; ++key) {
        const double w = std::exp(sc[key] - mx);
        sum += w;
        for (int d = 0; d < D; ++d) o[d] += w * v.get(slotOf(s, key) * slotElems + kvh * D + d);
      }
      for (int d = 0; d < D; ++d) per[t].add(out.get(((size_t)t * Hq + h) * D + d), o[d] / sum, atol, rtol);
    }
  });
  for (auto& e : per) {
    stat.worst = std::max(stat.worst, e.worst); stat.maxAbs = std::max(stat.maxAbs, e.maxAbs);
    stat.bad += e.bad; stat.n += e.n;
  }
  if (!per.empty() && std::any_of(per.begin(), per.end(), [](const ErrStat& e) { return !e.ok(); }))
    std::printf("  attention mismatch: %s D=%d G=%d bs=%d %s\n", dtName(dt), D, G, blockSize, scen.c_str());
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
}

}  // namespace kt
