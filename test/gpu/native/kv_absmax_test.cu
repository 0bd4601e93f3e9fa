// kvsk_kv_absmax (the fp8 KV cache's calibration observer) against a plain host maximum, bit for bit (a maximum
// is exact): every cache dtype (f32, bf16, f16, e4m3 codes decoded by harness.h's own e4m3Value), rows of 8 to
// 1024 elements (Hkv * D, also one that is not a power of two), slot lists of 1, 17 (across the 16 slots of a
// CTA) and 300 entries with skipped (-1) and repeated slots; the output accumulates onto what it held; a NaN in
// an observed row gives NaN, one in a row nobody asked about changes nothing; an empty list is a no-op and a bad
// plane count is refused.
#include <algorithm>
#include <cstring>

#include "harness.h"

namespace kt {

namespace {

constexpr int kBlocks = 12, kBlockSize = 16, kPlanes = 6;  // 3 layers x (K, V)

// The cache as float values of the dtype (fp8: codes), one plane after the other, and the host's |x|.
struct Cache {
  kvsk_kv_dtype kind;
  kvsk_dtype dt;
  int rowElems;
  size_t planeElems;
  std::vector<uint8_t> bytes;
  size_t elemBytes() const { return kind == KVSK_KV_FP8_E4M3 ? 1 : dtSize(dt); }
  double absAt(size_t i) const {
    if (kind == KVSK_KV_FP8_E4M3) return std::fabs(e4m3Value(bytes[i]));
    return std::fabs((double)load(dt, bytes.data(), i));
  }
  void setNan(size_t i) {
    if (kind == KVSK_KV_FP8_E4M3) bytes[i] = 0x7F;
    else store(dt, bytes.data(), i, NAN);
  }
};

Cache makeCache(kvsk_kv_dtype kind, kvsk_dtype dt, int rowElems) {
  Cache c{kind, dt, rowElems, (size_t)kBlocks * kBlockSize * rowElems, {}};
  const size_t n = c.planeElems * kPlanes;
  c.bytes.resize(n * c.elemBytes());
  for (size_t i = 0; i < n; ++i) {
    if (kind == KVSK_KV_FP8_E4M3) {
      uint8_t code = (uint8_t)irand(0, 255);
      if ((code & 0x7F) == 0x7F) code ^= 1;  // no NaN unless planted
      c.bytes[i] = code;
    } else {
      // Each plane its own range, so that a read of the wrong plane shows.
      const float r = 0.5f + (float)(i / c.planeElems);
      store(dt, c.bytes.data(), i, uni(-r, r));
    }
  }
  return c;
}

// What kvsk_kv_absmax must give: max(prev, |x|) over the listed rows, NaN where one of them holds NaN.
std::vector<float> reference(const Cache& c, const std::vector<int32_t>& slots, const std::vector<float>& prev) {
  std::vector<float> out(prev);
  for (int p = 0; p < kPlanes; ++p)
    for (int32_t s : slots) {
      if (s < 0) continue;
      for (int e = 0; e < c.rowElems; ++e) {
        const double a = c.absAt(p * c.planeElems + (size_t)s * c.rowElems + e);
        if (std::isnan(a)) out[p] = NAN;
        else if (!std::isnan(out[p])) out[p] = std::max(out[p], (float)a);
      }
    }
  return out;
}

std::vector<int32_t> slotList(int n) {
  std::vector<int32_t> s(n);
  for (int i = 0; i < n; ++i) s[i] = irand(0, 9) == 0 ? -1 : irand(0, kBlocks * kBlockSize - 1);
  if (n > 2) s[n - 1] = s[0];  // a slot listed twice
  return s;
}

// One launch; returns whether every plane's result has the reference's bits.
bool absMaxCase(Cache& c, const std::vector<int32_t>& slots, const std::vector<float>& prev, std::string& why) {
  DevVec<uint8_t> dc(c.bytes);
  DevVec<int32_t> ds(slots);
  DevVec<float> out(prev);
  kvsk_kv_absmax_params p{dc.dev, kPlanes, (int64_t)c.planeElems, c.rowElems, ds.dev, (int)slots.size(), c.dt, c.kind, out.dev};
  CK(kvsk_kv_absmax(&p, 0));
  CK(cudaDeviceSynchronize());
  const std::vector<float> got = out.down(), want = reference(c, slots, prev);
  for (int i = 0; i < kPlanes; ++i) {
    const bool same = std::isnan(want[i]) ? std::isnan(got[i]) : std::memcmp(&got[i], &want[i], 4) == 0;
    if (!same) {
      why = "plane " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", want " + std::to_string(want[i]);
      return false;
    }
  }
  return true;
}

}  // namespace

void kvAbsMaxTests() {
  struct Kind { kvsk_kv_dtype kind; kvsk_dtype dt; const char* name; };
  const Kind kinds[] = {{KVSK_KV_SAME, KVSK_F32, "f32"}, {KVSK_KV_SAME, KVSK_BF16, "bf16"},
                        {KVSK_KV_SAME, KVSK_F16, "f16"}, {KVSK_KV_FP8_E4M3, KVSK_BF16, "fp8 e4m3"}};
  for (const Kind& k : kinds) {
    int cases = 0, failed = 0;
    std::string why;
    for (int rowElems : {8, 128, 120, 1024})
      for (int n : {1, 17, 300}) {
        Cache c = makeCache(k.kind, k.dt, rowElems);
        std::vector<float> prev(kPlanes, 0.f);
        prev[1] = 1000.f;  // above anything in the cache: must stay
        prev[3] = 0.25f;   // below most of it: must be replaced
        const std::vector<int32_t> slots = slotList(n);
        ++cases;
        failed += !absMaxCase(c, slots, prev, why);
        // NaN in a listed row of plane 2 and in an unlisted row of plane 4.
        int listed = -1, unlisted = -1;
        for (int32_t s : slots) if (s >= 0) { listed = s; break; }
        for (int s = 0; s < kBlocks * kBlockSize && unlisted < 0; ++s)
          if (std::find(slots.begin(), slots.end(), s) == slots.end()) unlisted = s;
        if (listed >= 0) c.setNan(2 * c.planeElems + (size_t)listed * rowElems + rowElems - 1);
        if (unlisted >= 0) c.setNan(4 * c.planeElems + (size_t)unlisted * rowElems);
        ++cases;
        failed += !absMaxCase(c, slots, std::vector<float>(kPlanes, 0.f), why);
      }
    reportBool("kvabsmax", std::string(k.name) + " cache: per-plane abs-max over listed slots (bitwise)", cases,
               failed == 0, failed ? std::to_string(failed) + " cases differ; last: " + why : "");
  }
  // An empty list leaves the output alone; no planes is refused.
  DevVec<float> out(std::vector<float>{7.f});
  DevVec<int32_t> none(std::vector<int32_t>{});
  DevVec<uint8_t> cache((size_t)64);
  kvsk_kv_absmax_params p{cache.dev, 1, 64, 8, none.dev, 0, KVSK_BF16, KVSK_KV_SAME, out.dev};
  const bool emptyOk = kvsk_kv_absmax(&p, 0) == cudaSuccess && out.down()[0] == 7.f;
  p.numSlots = 1;
  p.numPlanes = 0;
  const bool refused = kvsk_kv_absmax(&p, 0) == cudaErrorInvalidValue;
  reportBool("kvabsmax", "no slots: a no-op; no planes: cudaErrorInvalidValue", 2, emptyOk && refused,
             emptyOk ? (refused ? "" : "numPlanes 0 accepted") : "an empty list changed the output");
}

}  // namespace kt
