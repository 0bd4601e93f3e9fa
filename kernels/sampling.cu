// Sampling on the GPU, one CTA of 1024 threads per sampled row (see kvserve_kernels.h for the stages).
//
// Semantics (the same as the CPU sampler): logprobs are log_softmax of raw + logit bias with -inf outside the
// row's allowed-token mask (a banned token reads -inf, as OpenAI reports it). The sampled logits are
// raw + logit bias, masked -> repetition penalty (HF: x < 0 ? x * p : x / p, once per distinct prompt/output token)
// -> frequency/presence (OpenAI: x -= f * count + p * (count > 0), output tokens only). temperature <= 1e-5:
// argmax, ties to the lower id. Otherwise x / T, sorted descending (ties: lower id first), then
//   top-k:  keep the first k;                              q_j = exp(x_j - x_0) over the kept ones
//   top-p:  keep the shortest prefix whose sum of q reaches topP * (sum of the top-k q);
//   min-p:  keep only q_j >= minP (q_0 = 1 is the largest probability);
// and pick the first j whose inclusive prefix sum of q exceeds u * (sum of the kept q), u = uniform(seed, step).
// Every sum is taken in a fixed order (per-thread chunks in index order, then a fixed tree), so a row's result
// depends on its own inputs only.
#include <climits>

#include "common.cuh"

namespace kvsk {

constexpr int kSampleThreads = 1024;

__host__ __device__ inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Bit-identical to kvs::uniform01 of engines/sampler.cc (the CPU sampler).
__host__ __device__ inline double uniform01(uint32_t seed, int32_t step) {
  const uint64_t h = mix64(mix64(seed) ^ ((uint64_t)(uint32_t)step * 0xD1B54A32D192ED03ull));
  return (double)(h >> 11) * 0x1.0p-53;
}

// (value, id) ordering of the sampler: larger value first, then the lower id.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && (unsigned)i < (unsigned)bi);
}

__device__ void blockArgBest(float& v, int& i, float* sv, int* si) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) { v = ov; i = oi; }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) { sv[warp] = v; si[warp] = i; }
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? sv[lane] : -INFINITY;
  i = lane < (int)(blockDim.x >> 5) ? si[lane] : -1;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) { v = ov; i = oi; }
  }
}

// Exclusive prefix over threads of x (fixed order; blockDim.x == 1024); returns the prefix, total in *total.
template <typename F>
__device__ F blockExclusiveScan(F x, F* scratch /* [33] */, F* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  F inc = x;
  for (int o = 1; o < 32; o <<= 1) {
    const F y = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += y;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    F w = lane < nw ? scratch[lane] : F(0), wi = w;
    for (int o = 1; o < 32; o <<= 1) {
      const F y = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += y;
    }
    if (lane < nw) scratch[lane] = wi - w;  // exclusive over warps
    if (lane == 31) scratch[32] = wi;       // total
  }
  __syncthreads();
  *total = scratch[32];
  const F r = scratch[warp] + inc - x;
  __syncthreads();
  return r;
}

__device__ double blockSumD(double v, double* scratch /* [32] */) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Row r's top-K logprobs of the values x (the biased, masked logits): K passes of a block-wide arg-best, each
// excluding what the previous passes took (ties to the lower id). Rows asking fewer than K are padded.
__device__ void topLogprobs(const kvsk_sample_params& p, int r, const float* x, double lse, float* sf, int* si) {
  const int V = p.vocab, tid = threadIdx.x, want = p.numLogprobs[r];
  float pv = INFINITY;
  int pi = -1;
  for (int k = 0; k < p.topLogprobs; ++k) {
    if (k >= want) {
      if (tid == 0) { p.topIds[r * p.topLogprobs + k] = -1; p.topValues[r * p.topLogprobs + k] = NAN; }
      continue;
    }
    float bv = -INFINITY;
    int bi = -1;
    for (int i = tid; i < V; i += blockDim.x) {
      const float v = x[i];
      if (better(pv, pi, v, i) && better(v, i, bv, bi)) { bv = v; bi = i; }
    }
    blockArgBest(bv, bi, sf, si);
    if (tid == 0) { p.topIds[r * p.topLogprobs + k] = bi; p.topValues[r * p.topLogprobs + k] = (float)((double)bv - lse); }
    pv = bv;
    pi = bi;
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kSampleThreads) prepareKernel(kvsk_sample_params p) {
  __shared__ float sf[32];
  __shared__ double sd[32];
  __shared__ int si[32];
  const int r = blockIdx.x, V = p.vocab;
  float* raw = p.raw + (int64_t)r * V;
  float* work = p.work + (int64_t)r * V;
  int32_t* counts = p.counts + (int64_t)r * V;

  float mx = -INFINITY;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const int64_t e = (int64_t)r * V + i;
    float x;
    if (p.dtype == KVSK_F32) x = static_cast<const float*>(p.logits)[e];
    else if (p.dtype == KVSK_BF16) x = toF(static_cast<const __nv_bfloat16*>(p.logits)[e]);
    else x = toF(static_cast<const __half*>(p.logits)[e]);
    raw[i] = x;
    work[i] = x;
    mx = fmaxf(mx, x);
  }
  const float rawMax = blockMax(mx, sf);
  double se = 0.0;
  for (int i = threadIdx.x; i < V; i += blockDim.x) se += exp((double)raw[i] - (double)rawMax);
  se = blockSumD(se, sd);
  if (threadIdx.x == 0) p.rawLse[r] = (float)((double)rawMax + log(se));
  __syncthreads();

  const bool biased = p.biasStart && p.biasStart[r + 1] > p.biasStart[r];
  if (biased) {
    for (int j = p.biasStart[r] + threadIdx.x; j < p.biasStart[r + 1]; j += blockDim.x) {
      const int tok = p.biasTokens[j];
      if (tok >= 0 && tok < V) atomicAdd(&work[tok], p.biasValues[j]);
    }
    __syncthreads();
  }
  const uint32_t* mask = p.maskRow && p.maskRow[r] >= 0 ? p.masks + (int64_t)p.maskRow[r] * ((V + 31) / 32) : nullptr;
  if (mask) {
    for (int i = threadIdx.x; i < V; i += blockDim.x)
      if (!((mask[i >> 5] >> (i & 31)) & 1u)) work[i] = -INFINITY;
    __syncthreads();
  }
  // Logprobs come from the biased, masked logits (work as it is now, before penalties and temperature); the
  // log-sum-exp is rounded to float as it is stored.
  double lse = (double)(float)((double)rawMax + log(se));
  if (biased || mask) {
    float bm = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) bm = fmaxf(bm, work[i]);
    bm = blockMax(bm, sf);
    double be = 0.0;
    if (bm > -INFINITY)
      for (int i = threadIdx.x; i < V; i += blockDim.x) be += exp((double)work[i] - (double)bm);
    be = blockSumD(be, sd);
    lse = (double)(float)((double)bm + log(be));
  }
  if (threadIdx.x == 0) p.rowLse[r] = (float)lse;
  topLogprobs(p, r, work, lse, sf, si);
  if (p.historyStart) {
    const int h0 = p.historyStart[r], h1 = p.historyStart[r + 1], ho = h0 + p.historyOutputStart[r];
    const float rep = p.repetitionPenalty[r];
    if (rep != 1.f && rep > 0.f) {
      for (int j = h0 + threadIdx.x; j < h1; j += blockDim.x) {
        const int tok = p.historyTokens[j];
        if (tok >= 0 && tok < V) counts[tok] = 1;
      }
      __syncthreads();
      for (int j = h0 + threadIdx.x; j < h1; j += blockDim.x) {
        const int tok = p.historyTokens[j];
        if (tok >= 0 && tok < V && atomicExch(&counts[tok], 0) == 1) {  // first claimant only
          const float x = work[tok];
          work[tok] = x < 0.f ? x * rep : x / rep;
        }
      }
      __syncthreads();
    }
    const float fp = p.frequencyPenalty[r], pp = p.presencePenalty[r];
    if (fp != 0.f || pp != 0.f) {
      for (int j = ho + threadIdx.x; j < h1; j += blockDim.x) {
        const int tok = p.historyTokens[j];
        if (tok >= 0 && tok < V) atomicAdd(&counts[tok], 1);
      }
      __syncthreads();
      for (int j = ho + threadIdx.x; j < h1; j += blockDim.x) {
        const int tok = p.historyTokens[j];
        if (tok < 0 || tok >= V) continue;
        const int c = atomicExch(&counts[tok], 0);  // exactly one thread sees c > 0; counts end zeroed
        if (c > 0) work[tok] -= fp * (float)c + pp;
      }
      __syncthreads();
    }
  }
  const float temp = p.temperature[r];
  if (temp <= 1e-5f) {
    float bv = -INFINITY;
    int bi = -1;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
      if (better(work[i], i, bv, bi)) { bv = work[i]; bi = i; }
    blockArgBest(bv, bi, sf, si);
    if (threadIdx.x == 0) p.tokens[r] = bi < 0 ? 0 : bi;
  } else {
    for (int i = threadIdx.x; i < V; i += blockDim.x) work[i] = work[i] / temp;
  }
}

// Draws from q over the candidates j in [0, n) of `vals` (an unsorted row in id order, or a sorted one),
// skipping q_j < minP; returns the chosen position. q_j = exp(vals[j] - top) in double, like the CPU sampler.
__device__ int drawPosition(const float* vals, int n, double top, float minP, double u, double* sd, int* sCut,
                            int* sLast) {
  const int tid = threadIdx.x, chunk = (n + blockDim.x - 1) / blockDim.x;
  const int b = min(n, tid * chunk), e = min(n, b + chunk);
  double local = 0.0;
  for (int j = b; j < e; ++j) {
    const double q = exp((double)vals[j] - top);
    if (!(minP > 0.f && q < (double)minP)) local += q;
  }
  double total;
  double acc = blockExclusiveScan(local, sd, &total);
  const double target = u * total;
  if (tid == 0) { *sCut = INT_MAX; *sLast = -1; }
  __syncthreads();
  int last = -1;
  for (int j = b; j < e; ++j) {
    const double q = exp((double)vals[j] - top);
    if (minP > 0.f && q < (double)minP) continue;
    last = j;
    acc += q;
    if (acc > target) { atomicMin(sCut, j); break; }
  }
  if (last >= 0) atomicMax(sLast, last);
  __syncthreads();
  // Rounding can leave nothing above target: then the last kept candidate (as the CPU sampler).
  const int pos = *sCut != INT_MAX ? *sCut : *sLast;
  __syncthreads();
  return pos;
}

__global__ void __launch_bounds__(kSampleThreads) finishKernel(kvsk_sample_params p) {
  __shared__ float sf[33];
  __shared__ int si[33];
  __shared__ double sd[33];
  __shared__ int sCut, sLast;
  const int r = blockIdx.x, V = p.vocab, tid = threadIdx.x;

  if (p.temperature[r] > 1e-5f) {
    const int topK = p.topK[r];
    const float topP = p.topP[r], minP = p.minP[r];
    const double u = uniform01(p.seeds[r], p.seedSteps[r]);
    int pick;
    if ((topK > 0 && topK < V) || topP < 1.f) {
      // Ranked candidates: the row sorted descending, top-k is a prefix, top-p a shorter one.
      const float* s = p.sortedKeys + (int64_t)r * V;
      const int32_t* ids = p.sortedIds + (int64_t)r * V;
      const int kEff = topK > 0 && topK < V ? topK : V;
      const double top = (double)s[0];
      int n = kEff;
      if (topP < 1.f) {
        const int chunk = (kEff + blockDim.x - 1) / blockDim.x;
        const int b = min(kEff, tid * chunk), e = min(kEff, b + chunk);
        double local = 0.0;
        for (int j = b; j < e; ++j) local += exp((double)s[j] - top);
        double zk;
        double acc = blockExclusiveScan(local, sd, &zk);
        const double target = (double)topP * zk;
        if (tid == 0) sCut = kEff;
        __syncthreads();
        for (int j = b; j < e; ++j) {
          acc += exp((double)s[j] - top);
          if (acc >= target) { atomicMin(&sCut, j + 1); break; }
        }
        __syncthreads();
        n = sCut;
        __syncthreads();
      }
      const int pos = drawPosition(s, n, top, minP, u, sd, &sCut, &sLast);
      pick = pos >= 0 ? ids[pos] : ids[0];
    } else {
      // Nothing to rank: candidates in id order (as the CPU sampler), min-p relative to the maximum.
      const float* w = p.work + (int64_t)r * V;
      float bv = -INFINITY;
      int bi = -1;
      for (int i = tid; i < V; i += blockDim.x)
        if (better(w[i], i, bv, bi)) { bv = w[i]; bi = i; }
      blockArgBest(bv, bi, sf, si);
      const int pos = isfinite(bv) ? drawPosition(w, V, (double)bv, minP, u, sd, &sCut, &sLast) : -1;
      pick = pos >= 0 ? pos : (bi < 0 ? 0 : bi);
    }
    if (tid == 0) p.tokens[r] = pick;
    __syncthreads();
  }

  // The sampled token's logprob: its biased value rebuilt as prepareKernel made it (raw, plus each of its bias
  // entries in order, -inf outside the mask), against the log-sum-exp of the biased, masked row.
  if (tid == 0) {
    const int t = p.tokens[r];
    float x = p.raw[(int64_t)r * V + t];
    if (p.biasStart)
      for (int j = p.biasStart[r]; j < p.biasStart[r + 1]; ++j)
        if (p.biasTokens[j] == t) x += p.biasValues[j];
    if (p.maskRow && p.maskRow[r] >= 0 && !((p.masks[(int64_t)p.maskRow[r] * ((V + 31) / 32) + (t >> 5)] >> (t & 31)) & 1u))
      x = -INFINITY;
    p.logprobs[r] = p.numLogprobs[r] >= 0 ? (float)((double)x - (double)p.rowLse[r]) : NAN;
    // A NaN or +inf logit, or no finite one, leaves the raw row's log-sum-exp non-finite: nothing meaningful
    // to sample. Flag the row with token -1 (the host reports it as a row fault, as the CPU sampler does).
    if (!isfinite(p.rawLse[r])) p.tokens[r] = -1;
  }
}

}  // namespace kvsk

extern "C" double kvsk_uniform(uint32_t seed, int32_t step) { return kvsk::uniform01(seed, step); }

extern "C" cudaError_t kvsk_sample_prepare(const kvsk_sample_params* p, cudaStream_t stream) {
  if (p->rows <= 0) return cudaSuccess;
  kvsk::prepareKernel<<<p->rows, kvsk::kSampleThreads, 0, stream>>>(*p);
  return cudaGetLastError();
}

extern "C" cudaError_t kvsk_sample_finish(const kvsk_sample_params* p, cudaStream_t stream) {
  if (p->rows <= 0) return cudaSuccess;
  kvsk::finishKernel<<<p->rows, kvsk::kSampleThreads, 0, stream>>>(*p);
  return cudaGetLastError();
}
