// The paged-attention cases of the kernel tests (attention_case.h): inputs, plan and launch, the float64
// reference, and the decode rows' batch invariance.
#include "attention_case.h"

#include <algorithm>
#include <numeric>

namespace kt {

Cache::Cache(kvsk_dtype dt, size_t n, const KvFormat& fmt)
    : f(fmt), k(dt, fmt.fp8() ? 0 : n), v(dt, fmt.fp8() ? 0 : n), k8(fmt.fp8() ? n : 0, 0x7F), v8(k8.size(), 0x7F),
      dk8(k8.size() + 16), dv8(v8.size() + 16) {
  if (!fmt.fp8()) {  // unowned slots read as NaN (a kernel that reads one fails its case)
    const size_t per = (n + 15) / 16;
    parallelFor(16, [&](int w) {
      for (size_t i = (size_t)w * per; i < std::min(n, (size_t)(w + 1) * per); ++i) { k.set(i, NAN); v.set(i, NAN); }
    });
  }
}

void Cache::up() {
  if (!f.fp8()) { k.up(); v.up(); return; }
  kd.resize(k8.size());
  vd.resize(v8.size());
  const size_t n = k8.size(), per = (n + 15) / 16;
  parallelFor(16, [&](int w) {
    for (size_t i = (size_t)w * per; i < std::min(n, (size_t)(w + 1) * per); ++i) {
      kd[i] = e4m3Value(k8[i]) * (double)f.kScale;
      vd[i] = e4m3Value(v8[i]) * (double)f.vScale;
    }
  });
  CK(cudaMemcpy(dk8.dev, k8.data(), k8.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dv8.dev, v8.data(), v8.size(), cudaMemcpyHostToDevice));
}

void Cache::into(kvsk_attention_params& p) const {
  p.kCache = f.fp8() ? (void*)dk8.dev : k.dev;
  p.vCache = f.fp8() ? (void*)dv8.dev : v.dev;
  p.cacheDtype = f.kind; p.kScale = f.kScale; p.vScale = f.vScale;
}

AttnCase::AttnCase(kvsk_dtype dt_, int D_, int G_, int blockSize_, const std::vector<Seq>& seqs_, const KvFormat& fmt)
    : dt(dt_), D(D_), G(G_), Hq(2 * G_), blockSize(blockSize_), S((int)seqs_.size()), seqs(seqs_), qs(S + 1, 0), ctx(S) {
  int totalBlocks = 0;
  for (int s = 0; s < S; ++s) {
    qs[s + 1] = qs[s] + seqs[s].qLen;
    ctx[s] = seqs[s].cached + seqs[s].qLen;
    const int nb = (ctx[s] + blockSize - 1) / blockSize;
    maxBlocks = std::max(maxBlocks, nb);
    totalBlocks += nb;
  }
  T = qs[S];
  const int numBlocks = totalBlocks + 3;
  std::vector<int> perm(numBlocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng());
  table.assign((size_t)S * maxBlocks, 0);
  int next = 0;
  for (int s = 0; s < S; ++s)
    for (int b = 0; b * blockSize < ctx[s]; ++b) table[(size_t)s * maxBlocks + b] = perm[next++];
  slotElems = (size_t)Hkv * D;
  kv = std::make_unique<Cache>(dt, (size_t)numBlocks * blockSize * slotElems, fmt);
  q = std::make_unique<Buf>(dt, (size_t)T * Hq * D);
  // Inputs by a counter-based generator, in parallel over the cached keys (each its own slot: no two threads write
  // one element) and over q's rows.
  const uint64_t seed = rng()();
  std::vector<int> keyStart(S + 1, 0);
  for (int s = 0; s < S; ++s) keyStart[s + 1] = keyStart[s] + ctx[s];
  parallelFor(keyStart[S], [&](int i) {
    const int s = int(std::upper_bound(keyStart.begin(), keyStart.end(), i) - keyStart.begin()) - 1, key = i - keyStart[s];
    const size_t base = slotOf(s, key) * slotElems;
    for (size_t e = 0; e < slotElems; ++e) {
      kv->setK(base + e, hashUni(seed, 2 * (base + e), -1, 1));
      kv->setV(base + e, hashUni(seed, 2 * (base + e) + 1, -1, 1));
    }
  });
  const uint64_t qSeed = rng()();
  parallelFor(T, [&](int t) {
    for (size_t i = (size_t)t * Hq * D; i < (size_t)(t + 1) * Hq * D; ++i) q->set(i, hashUni(qSeed, i, -2, 2));
  });
  kv->up(); q->up();
  dQs = std::make_unique<DevVec<int32_t>>(qs);
  dCtx = std::make_unique<DevVec<int32_t>>(ctx);
  dTable = std::make_unique<DevVec<int32_t>>(table);
}

kvsk_attention_plan_info AttnCase::plan(kvsk_attn_prefill prefill, std::vector<int32_t>& tileSeq, std::vector<int32_t>& tileQ,
                                        std::vector<int32_t>& tileSlot) const {
  tileSeq.assign(T, 0); tileQ.assign(T, 0); tileSlot.assign(T, 0);
  kvsk_attention_plan_info info{};
  if (kvsk_attention_plan(qs.data(), ctx.data(), S, Hq, Hkv, D, dt, 128, prefill, tileSeq.data(), tileQ.data(),
                          tileSlot.data(), T, &info) != 0)
    throw std::runtime_error("attention plan failed");
  return info;
}

cudaError_t AttnCase::launch(kvsk_attn_prefill planned, std::vector<uint8_t>* out, kvsk_attention_plan_info* infoOut,
                             const kvsk_attn_prefill* launched) const {
  std::vector<int32_t> tileSeq, tileQ, tileSlot;
  const kvsk_attention_plan_info info = plan(planned, tileSeq, tileQ, tileSlot);
  if (infoOut) *infoOut = info;
  DevVec<int32_t> dTS(tileSeq), dTQ(tileQ), dSlot(tileSlot);
  DevVec<float> pOut((size_t)std::max(1, info.numSplitSlots) * Hq * info.maxSplits * D),
      pMax((size_t)std::max(1, info.numSplitSlots) * Hq * info.maxSplits), pSum(pMax.n);
  Buf o(dt, (size_t)T * Hq * D);
  o.poison();
  kvsk_attention_params p{};
  into(p);
  p.out = o.dev;
  p.tileSeq = dTS.dev; p.tileQStart = dTQ.dev; p.tileSplitSlot = dSlot.dev;
  p.partialOut = pOut.dev; p.partialMax = pMax.dev; p.partialSum = pSum.dev;
  p.numTiles = info.numTiles; p.tokensPerTile = info.tokensPerTile; p.numSplitSlots = info.numSplitSlots;
  p.maxSplits = info.maxSplits;
  p.prefill = launched ? *launched : info.prefill;
  const cudaError_t e = kvsk_attention(&p, info.decode, 0);
  if (e != cudaSuccess) return e;
  CK(cudaDeviceSynchronize());
  o.down();
  if (out) *out = o.host;
  return cudaSuccess;
}

std::vector<uint8_t> AttnCase::run(kvsk_attn_prefill prefill, kvsk_attention_plan_info* info) const {
  std::vector<uint8_t> out;
  CK(launch(prefill, &out, info));
  return out;
}

void AttnCase::into(kvsk_attention_params& p) const {
  p.q = q->dev;
  kv->into(p);
  p.blockTables = dTable->dev; p.queryStart = dQs->dev; p.contextLens = dCtx->dev;
  p.partitionSize = 128;
  p.numHeads = Hq; p.numKvHeads = Hkv; p.headDim = D; p.blockSize = blockSize; p.maxBlocksPerSeq = maxBlocks;
  p.scale = 1.f / std::sqrt((float)D); p.dtype = dt;
}

std::vector<double> AttnCase::reference() const {
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
        for (int d = 0; d < D; ++d) dot += (double)q->get(((size_t)t * Hq + h) * D + d) * kv->getK(slotOf(s, key) * slotElems + kvh * D + d);
        sc[key] = dot / std::sqrt((double)D);
        mx = std::max(mx, sc[key]);
      }
      double sum = 0;
      std::fill(o.begin(), o.end(), 0.0);
      for (int key = 0; key <= pos; ++key) {
        const double w = std::exp(sc[key] - mx);
        sum += w;
        for (int d = 0; d < D; ++d) o[d] += w * kv->getV(slotOf(s, key) * slotElems + kvh * D + d);
      }
      for (int d = 0; d < D; ++d) ref[((size_t)t * Hq + h) * D + d] = o[d] / sum;
    }
  });
  return ref;
}

void AttnCase::check(const std::vector<uint8_t>& out, ErrStat& stat, const std::string& scen) const {
  check(out, reference(), stat, scen);
}

void AttnCase::check(const std::vector<uint8_t>& out, const std::vector<double>& ref, ErrStat& stat,
                     const std::string& scen) const {
  const double atol = dt == KVSK_F32 ? 1e-5 : dt == KVSK_F16 ? 2e-3 : 1.6e-2, rtol = dt == KVSK_F32 ? 1e-4 : atol;
  std::vector<ErrStat> per(T);
  parallelFor(T, [&](int t) {
    for (size_t e = (size_t)t * Hq * D; e < (size_t)(t + 1) * Hq * D; ++e) per[t].add(load(dt, out.data(), e), ref[e], atol, rtol);
  });
  for (auto& e : per) {
    stat.worst = std::max(stat.worst, e.worst); stat.maxAbs = std::max(stat.maxAbs, e.maxAbs);
    stat.bad += e.bad; stat.n += e.n;
  }
  if (!per.empty() && std::any_of(per.begin(), per.end(), [](const ErrStat& e) { return !e.ok(); }))
    std::printf("  attention mismatch: %s%s D=%d G=%d bs=%d %s\n", dtName(dt), kv->f.fp8() ? " fp8 cache" : "", D, G,
                blockSize, scen.c_str());
}

std::string decodeInvarianceCase(kvsk_dtype dt, int D, int G, const KvFormat& fmt, kvsk_attn_prefill prefill) {
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
  const uint64_t seed = rng()(), qSeed = rng()();
  parallelFor(numBlocks * bs, [&](int slot) {
    for (size_t i = (size_t)slot * slotElems; i < (size_t)(slot + 1) * slotElems; ++i) {
      kv.setK(i, hashUni(seed, 2 * i, -1, 1));
      kv.setV(i, hashUni(seed, 2 * i + 1, -1, 1));
    }
  });
  Buf q(dt, (size_t)T * Hq * D);
  parallelFor(T, [&](int t) {
    for (size_t i = (size_t)t * Hq * D; i < (size_t)(t + 1) * Hq * D; ++i) q.set(i, hashUni(qSeed, i, -2, 2));
  });
  kv.up(); q.up();
  DevVec<int32_t> dTable(table);
  kvsk_attn_prefill mixedKernel = KVSK_ATTN_PREFILL_V1;
  // Output of the decode tokens for a launch over the first nSeq sequences; graphed: every tile split; version:
  // decodeVersion (2: the single-launch kernel).
  auto run = [&](int nSeq, bool graphed, int version) {
    const int nTok = qs[nSeq];
    std::vector<int32_t> qsN(qs.begin(), qs.begin() + nSeq + 1), ctxN(ctx.begin(), ctx.begin() + nSeq);
    std::vector<int32_t> tileSeq(nTok), tileQ(nTok), tileSlot(nTok);
    kvsk_attention_plan_info info{};
    if (kvsk_attention_plan(qsN.data(), ctxN.data(), nSeq, Hq, Hkv, D, dt, partition, prefill, tileSeq.data(), tileQ.data(),
                            tileSlot.data(), nTok, &info) != 0)
      throw std::runtime_error("attention plan failed");
    if (!info.decode) mixedKernel = info.prefill;
    if (graphed) {  // as cuda_graphs.cc: one tile per sequence, each its own split slot, splits to a power of two
      for (int i = 0; i < nSeq; ++i) { tileSeq[i] = i; tileQ[i] = 0; tileSlot[i] = i; }
      int splits = 1;
      while (splits < info.maxSplits) splits *= 2;
      info = {nSeq, 1, nSeq, splits, 1, KVSK_ATTN_PREFILL_V1};
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
    p.scale = 1.f / std::sqrt((float)D); p.dtype = dt; p.prefill = info.prefill;
    p.decodeVersion = version; p.splitCounters = counters.dev;
    CK(kvsk_attention(&p, info.decode, 0));
    CK(cudaDeviceSynchronize());
    out.down();
    // Decode rows of a mixed launch: the chunk's tile lists first under version 2 (longest first), but each
    // row's output sits at its token, so the first nDec tokens are the decode rows in every launch.
    return std::vector<uint8_t>(out.host.begin(), out.host.begin() + (size_t)nDec * Hq * D * dtSize(dt));
  };
  const std::vector<uint8_t> alone = run(nDec, false, 1), mixed = run(S, false, 1), graphed = run(nDec, true, 1);
  std::string why;
  if (mixedKernel != prefill) why += "the mixed launch ran another prefill kernel than asked; ";
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

}  // namespace kt
