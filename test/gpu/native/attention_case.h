// A paged-attention case of the kernel tests, shared by the attention suite (attention_test.cu) and the
// prefill-version suite (attention_prefill_test.cu): Hkv = 2 KV heads of G query heads each, sequences with
// cached prefixes over shuffled physical blocks, every cache slot no sequence owns NaN (a read outside the
// block table or past the context poisons the output), q uniform in [-2, 2), K and V in [-1, 1), in the query
// dtype or as e4m3 codes with the layer's two scales. The reference is float64 attention over the cache as
// the kernels read it (an fp8 cache dequantized: code value * scale), so the cache's own rounding is not in
// the error; tolerance |out - ref| <= atol + rtol |ref|: f32 1e-5/1e-4, f16 2e-3/2e-3, bf16 1.6e-2/1.6e-2
// (one rounding of the output to the dtype dominates).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace kt {

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
  Cache(kvsk_dtype dt, size_t n, const KvFormat& fmt);
  void setK(size_t i, float x) { if (f.fp8()) k8[i] = e4m3Encode(x / f.kScale); else k.set(i, x); }
  void setV(size_t i, float x) { if (f.fp8()) v8[i] = e4m3Encode(x / f.vScale); else v.set(i, x); }
  double getK(size_t i) const { return f.fp8() ? kd[i] : k.get(i); }
  double getV(size_t i) const { return f.fp8() ? vd[i] : v.get(i); }
  void up();
  void into(kvsk_attention_params& p) const;
};

// One case's inputs, on the host and the device (made once; launched any number of times).
class AttnCase {
 public:
  AttnCase(kvsk_dtype dt, int D, int G, int blockSize, const std::vector<Seq>& seqs, const KvFormat& fmt = {});
  // The host plan with `prefill` (partition 128, the CUDA backend's for contexts up to 8k; capacity T); throws
  // when planning fails.
  kvsk_attention_plan_info plan(kvsk_attn_prefill prefill, std::vector<int32_t>& tileSeq, std::vector<int32_t>& tileQ,
                                std::vector<int32_t>& tileSlot) const;
  // Plans with `planned`, launches with kvsk_attention_params.prefill = `launched` (the plan's own choice when
  // omitted) and returns the launch's error; on success *out gets the output's bytes (poisoned before).
  cudaError_t launch(kvsk_attn_prefill planned, std::vector<uint8_t>* out, kvsk_attention_plan_info* info = nullptr,
                     const kvsk_attn_prefill* launched = nullptr) const;
  std::vector<uint8_t> run(kvsk_attn_prefill prefill, kvsk_attention_plan_info* info = nullptr) const;
  // The case's inputs and shape into p: q, the cache, block tables, query starts, contexts, heads, block size,
  // partition 128, scale, dtype (the caller sets the plan's tiles, the partials and the output).
  void into(kvsk_attention_params& p) const;
  // The float64 reference, [T][Hq][D].
  std::vector<double> reference() const;
  // out (bytes of run()) against float64 (`ref`: reference(), computed when omitted), every element; a mismatch
  // is printed with `scen`.
  void check(const std::vector<uint8_t>& out, ErrStat& stat, const std::string& scen) const;
  void check(const std::vector<uint8_t>& out, const std::vector<double>& ref, ErrStat& stat, const std::string& scen) const;

  const kvsk_dtype dt;
  const int D, G, Hkv = 2, Hq, blockSize, S;
  const std::vector<Seq> seqs;
  std::vector<int32_t> qs, ctx;  // [S + 1] query starts, [S] contexts
  int T = 0, maxBlocks = 1;

 private:
  size_t slotOf(int s, int key) const { return (size_t)table[(size_t)s * maxBlocks + key / blockSize] * blockSize + key % blockSize; }
  std::vector<int32_t> table;
  size_t slotElems;
  std::unique_ptr<Cache> kv;
  std::unique_ptr<Buf> q;
  std::unique_ptr<DevVec<int32_t>> dQs, dCtx, dTable;
};

// Decode rows (one split over 24 partitions) alone (the decode kernel), beside a 70-token chunk (the
// prefill-shaped kernel `prefill`) and all through the merge (what a graphed step does): the same bits; so do
// the single-launch decode kernel's (decodeVersion 2), alone and graphed, where it serves the shape.
// Returns "" or what differed.
std::string decodeInvarianceCase(kvsk_dtype dt, int D, int G, const KvFormat& fmt, kvsk_attn_prefill prefill);

}  // namespace kt
