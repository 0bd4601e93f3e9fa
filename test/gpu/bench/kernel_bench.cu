// kvserve_kernel_bench: the memory-bound kernels against the device's copy bandwidth, on Llama-3-8B's shapes.
// A benchmark, not a test: prints tables (CUDA events, median of 20 timed runs after 3 warm-ups).
//   copy   device-to-device cudaMemcpy of 2 GiB, bytes read + written (the ceiling)
//   gemv   Y = X W^T at M = 1..8 for every weight shape: our GEMV kernel and the batch-invariant cuBLASLt
//          algorithm (the previous default), weight bytes / time; weights rotate over > 1 GiB so that no
//          run finds its weight in the 60 MB L2
//   attn   decode attention (bf16, 32 query / 8 KV heads, head_dim 128, 16-token blocks, 128-key split
//          partitions) at batch 1 and 64 x context 4096: K+V bytes read / time; prefill attention of
//          2048- and 8192-token prompts (causal): TFLOP/s of the 4 T^2 D H / 2 useful flops
//   chain  16 back-to-back GEMVs at M = 1, plain launches against programmatic dependent launch (sm_90+)
//   gemv-even  the even GEMV (kernels/gemv_even.cu: W cut evenly over one wave of CTAs) against gemv.cu at its best
//          of 1, 2, 4 rows per CTA: single launches at M = 1, 2, 4, 8, then (sm_90+) chains of 16 with PDL at M = 1
//          and 8, one wave and two waves; weight bytes / time against the copy ceiling
//   fp8    the FP8-weight GEMV, v1 (kernels/gemv_fp8.cu) and v2 (gemv_fp8_v2.cu), at M = 1, 4, 8, 16 beside the
//          bf16 GEMV: weight bytes / time (1 byte a weight against 2), and 16 back-to-back FP8 GEMVs at M = 1, 8,
//          16 with programmatic dependent launch at 16, 32 and 64 rows per CTA (the forward pass's situation)
//   fp8gemm  GemmRunner::runFp8 (FP8 GEMV or quantize + cuBLASLt FP8, as planned) against the bf16 GemmRunner
//          at M = 16, 64, 256, 2048, 8192, both fast mode and timed on their weights: TFLOP/s of 2 M N K
//   attn-fp8  decode attention over an fp8 (e4m3) cache beside bf16 at batch 1 and 64 x 4096 and 256 x 512
//          (bytes of cache read / time and % of copy, bf16 and f16 queries), and prefill of 2048 and 8192 tokens
//   attn-prefill  prefill attention version 2 (kernels/flash_prefill.cuh) against version 1: prefill 1 x 512, 2048,
//          8192 and 4 x 2048 (causal), 512- and 2048-token chunks after cached prefixes, a 2048-token chunk beside
//          64 decodes; bf16 and fp8 cache, us of both versions, TFLOP/s of the useful causal flops, speedup
//   fuse   the GEMV epilogue fusions (kernels/gemv_fused.cu) at M = 1, 4, 8 against the two kernels they
//          replace: qkv GEMV + RoPE/cache write, gate/up GEMV + SiLU-and-mul, chains of 16 with PDL (sm_90+)
//   fuse-fp8  the same fusions on the FP8 GEMV's version 2 (kernels/gemv_fp8_fused.cu) at M = 1, 4, 8 and 16, 32,
//          64 rows per CTA against v2 followed by the separate kernel, chains of 16 with PDL (sm_90+)
//   fp8fuse  the FP8 GEMM inputs of a prefill step at M = 2048 and 8192, Llama-3-8B widths (H 4096, I 14336),
//          with programmatic dependent launch as the engine runs them: add + RMSNorm then the quantize pass
//          against the norm that writes the e4m3 rows itself, and SiLU·mul then the quantize pass (down_proj's
//          input); bytes moved / time against the copy ceiling (the time of those bytes at copy speed)
//   int8   the int8 GEMV (kernels/gemv_int8.cu, on x quantized per token) at M = 1, 4, 8, 16 beside the bf16
//          GEMV: weight bytes / time
//   int8gemm  GemmRunner::runInt8 (quantize, then the int8 GEMV or cuBLASLt IMMA + dequant, as planned)
//          against the bf16 GemmRunner at M = 16, 64, 256, 2048, 8192, both fast mode and timed on their
//          weights: TFLOP/s of 2 M N K
//   inv    the batch-invariant GEMM (kernels/gemm_inv.cu, bf16) against cuBLASLt's fast mode (timed plans, the
//          GEMV up to M = 8) and the batch-invariant cuBLASLt algorithm (picked at M = 256, as the engine's
//          default --max-num-seqs) at M = 1, 8, 64, 256, 2048, 8192: us, TFLOP/s of 2 M N K, for M <= 64 weight
//          bytes / time against the copy ceiling; then ours with each tile shape and split forced (the same
//          bits; what the automatic choice could pick instead); and (sm_90+) chains of 16 at M = 1 with PDL,
//          ours against the GEMV (the batch-1 step's situation)
//   attn-decode  decode attention, the two-launch kernel (v1) against the single-launch one (v2,
//          KVSERVE_ATTN_DECODE=v2) at batch 1, 8, 64 x context 512, 4096, 16384 (and batch 256 x 512, 1536) over a
//          bf16 and an fp8 cache, at
//          the engine's partition: K+V bytes / time against the copy ceiling, single launches and per layer in a
//          CUDA graph over enough layers to stream from DRAM (PDL on sm_90+); v2's chain at 2, 3, 4 ring stages
//   wgmma  the batch-invariant GEMM on wgmma (kernels/gemm_wgmma.cu, bf16; Hopper only) against cuBLASLt's fast
//          mode, its batch-invariant algorithm (picked at M = 256) and gemm_inv.cu, at M = 1, 2, 4, .., 8192: us,
//          TFLOP/s of 2 M N K, for M <= 64 weight bytes / time against the copy ceiling; then each tile shape and
//          split forced at M = 1, 8, 64, 256, 2048, 8192, and chains of 16 at M = 1 with PDL against the GEMV
//   gemv-inv  the batch-invariant small-M kernels on wgmma's k-partitions (the hybrid's): gemv_inv (W streamed into
//          registers; 1 and 2 n8 tiles a warp, and its automatic choice) against gemm_inv's 16 x 64 tile (its
//          automatic split) and the GEMV (4 rows a CTA, M <= 8), at M = 1, 2, 4, 8, 16: single launches, and
//          chains of 16 with PDL; weight bytes / time against the copy ceiling
// Usage: kvserve_kernel_bench [gemv-inv|gemv|chain|gemv-even|attn|attn-fp8|attn-prefill|attn-decode|copy|fp8|fp8gemm|fp8fuse|fuse|fuse-fp8|int8|int8gemm|inv|wgmma|rope ...]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gemm.h"
#include "kvserve_kernels.h"

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); std::exit(1); } } while (0)

namespace {

cudaStream_t stream;

// Median time in ms of fn(i) over 20 runs after 3 warm-ups (i = run index, for rotating buffers).
double timeMs(const std::function<void(int)>& fn) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn(i);
  std::vector<float> ts;
  for (int i = 0; i < 20; ++i) {
    CK(cudaEventRecord(a, stream));
    fn(i + 3);
    CK(cudaEventRecord(b, stream));
    CK(cudaEventSynchronize(b));
    float t = 0;
    CK(cudaEventElapsedTime(&t, a, b));
    ts.push_back(t);
  }
  CK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

void* devRandom(size_t elems, kvsk_dtype dt, uint64_t seed, float scale = 1.f) {
  void* p = nullptr;
  const size_t es = dt == KVSK_F32 ? 4 : 2;
  CK(cudaMalloc(&p, elems * es));
  kvsk_fill_params f{p, dt, (int64_t)elems, seed, scale, 0.f};
  CK(kvsk_fill(&f, stream));
  return p;
}

double copyBandwidth() {
  const size_t bytes = size_t(2) << 30;
  void *a, *b;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  const double ms = timeMs([&](int) { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream)); });
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (ms * 1e-3);
}

struct GemvShape { const char* name; int N, K; };
const GemvShape kGemvShapes[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096},
                                 {"down", 4096, 14336}, {"lm_head", 128256, 4096}};

// Random bf16 copies of one weight (enough of them, > 1.5 GiB, that no timed run finds its weight in L2), an
// X of `rows` rows and a Y for them; freed on destruction.
struct GemvBuffers {
  std::vector<void*> ws;
  void* x = nullptr;
  void* y = nullptr;
  GemvBuffers(const GemvShape& s, int minCopies, uint64_t seed, int rows) {
    const size_t wElems = (size_t)s.N * s.K;
    const int copies = std::max<int>(minCopies, (int)((size_t(3) << 29) / (wElems * 2)) + 1);
    for (int c = 0; c < copies; ++c) ws.push_back(devRandom(wElems, KVSK_BF16, seed + c, 0.05f));
    x = devRandom((size_t)rows * s.K, KVSK_BF16, 7);
    CK(cudaMalloc(&y, (size_t)rows * s.N * 2));
  }
  ~GemvBuffers() {
    for (void* w : ws) cudaFree(w);
    cudaFree(x);
    cudaFree(y);
  }
  const void* w(int i) const { return ws[i % ws.size()]; }
};

void gemvBench(double copyBw) {
  const kvsk_dtype dt = KVSK_BF16;
  kvs::cuda::GemmRunner invariant(stream, 256, kvs::cuda::GemmMode::BatchInvariant);
  std::printf("\nGEMV, bf16 (weight bytes / time; %% of copy bandwidth %.2f TB/s)\n", copyBw / 1e12);
  std::printf("%-8s %6s %6s %3s %10s %8s %6s %14s %8s\n", "weight", "N", "K", "M", "gemv us", "TB/s", "%copy", "cuBLASLt inv us", "TB/s");
  for (const GemvShape& s : kGemvShapes) {
    const double wBytes = (double)s.N * s.K * 2;
    const GemvBuffers buf(s, 2, 100, 8);
    for (int M : {1, 2, 4, 8}) {
      const double gemvMs = timeMs([&](int i) {
        kvsk_gemv_params g{buf.x, buf.w(i), buf.y, M, s.N, s.K, dt};
        CK(kvsk_gemv(&g, stream));
      });
      const double cubMs = timeMs([&](int i) {
        invariant.run(buf.x, buf.w(i), buf.y, M, s.N, s.K, kvs::DType::BF16, kvs::DType::BF16);
      });
      std::printf("%-8s %6d %6d %3d %10.1f %8.2f %5.0f%% %14.1f %8.2f\n", s.name, s.N, s.K, M, gemvMs * 1e3,
                  wBytes / (gemvMs * 1e-3) / 1e12, 100.0 * wBytes / (gemvMs * 1e-3) / copyBw, cubMs * 1e3,
                  wBytes / (cubMs * 1e-3) / 1e12);
    }
  }
}

// Back-to-back GEMVs (16 per timed run, rotating weights) as the forward pass issues them: per-kernel time
// with plain launches, and with programmatic dependent launch (each GEMV streams its weights while the
// previous one drains) at 4, 2 and 1 rows of W per CTA. The layer weights only (not lm_head).
void gemvChainBench(double copyBw) {
  const kvsk_dtype dt = KVSK_BF16;
  std::printf("\nGEMV chains of 16, bf16, M = 1 (per-kernel us, %% of copy bandwidth %.2f TB/s)\n", copyBw / 1e12);
  std::printf("%-8s %16s %16s %16s %16s\n", "weight", "plain, 4 rows", "PDL, 4 rows", "PDL, 2 rows", "PDL, 1 row");
  for (const GemvShape& s : kGemvShapes) {
    if (std::string(s.name) == "lm_head") continue;
    const double wBytes = (double)s.N * s.K * 2;
    const GemvBuffers buf(s, 17, 300, 1);
    std::printf("%-8s", s.name);
    for (const std::pair<int, int>& v : {std::pair{0, 4}, std::pair{1, 4}, std::pair{1, 2}, std::pair{1, 1}}) {
      const int pdl = v.first, rows = v.second;
      kvsk_set_programmatic_launch(pdl);
      const double us = 1e3 / 16 * timeMs([&](int i) {
        for (int j = 0; j < 16; ++j) {
          kvsk_gemv_params g{buf.x, buf.w(i * 16 + j), buf.y, 1, s.N, s.K, dt, rows};
          CK(kvsk_gemv(&g, stream));
        }
      });
      std::printf(" %8.1f (%3.0f%%)", us, 100.0 * wBytes / (us * 1e-6) / copyBw);
    }
    std::printf("\n");
    kvsk_set_programmatic_launch(0);
  }
}

// The even GEMV beside gemv.cu's best rows per CTA (the one the GEMM planner would keep), both timed on rotating
// weights. Single launches first (PDL as it is set: off, as gemvBench runs), then chains of 16 as the forward pass
// issues them: per-kernel us with programmatic dependent launch.
void gemvEvenBench(double copyBw, int numSms, bool pdl) {
  const kvsk_dtype dt = KVSK_BF16;
  const int wave = kvsk_gemv_even_ctas(1 << 20, 4096, numSms);  // one wave of the largest weights
  const size_t wsBytes = kvsk_gemv_even_workspace_bytes(2 * wave);
  void* ws = nullptr;
  CK(cudaMalloc(&ws, wsBytes));
  CK(cudaMemset(ws, 0, wsBytes));
  auto even = [&](const GemvBuffers& buf, const GemvShape& s, int i, int M, int ctas) {
    kvsk_gemv_even_params g{buf.x, buf.w(i), buf.y, M, s.N, s.K, dt, ctas, ws, wsBytes};
    CK(kvsk_gemv_even(&g, stream));
  };
  auto plain = [&](const GemvBuffers& buf, const GemvShape& s, int i, int M, int rows) {
    kvsk_gemv_params g{buf.x, buf.w(i), buf.y, M, s.N, s.K, dt, rows};
    CK(kvsk_gemv(&g, stream));
  };
  std::printf("\neven GEMV, bf16, single launches (weight bytes / time; %% of copy bandwidth %.2f TB/s; one wave = %d CTAs)\n",
              copyBw / 1e12, wave);
  std::printf("%-8s %6s %6s %3s %12s %5s %6s %10s %6s %8s\n", "weight", "N", "K", "M", "gemv best us", "rows", "%copy", "even us",
              "%copy", "even/gemv");
  for (const GemvShape& s : kGemvShapes) {
    const double wBytes = (double)s.N * s.K * 2;
    const GemvBuffers buf(s, 2, 700, 8);
    for (int M : {1, 2, 4, 8}) {
      double best = 1e30;
      int bestRows = 0;
      for (int rows : {4, 2, 1}) {
        const double ms = timeMs([&](int i) { plain(buf, s, i, M, rows); });
        if (ms < best) { best = ms; bestRows = rows; }
      }
      const double evenMs = timeMs([&](int i) { even(buf, s, i, M, kvsk_gemv_even_ctas(s.N, s.K, numSms)); });
      std::printf("%-8s %6d %6d %3d %12.1f %5d %5.0f%% %10.1f %5.0f%% %8.2fx\n", s.name, s.N, s.K, M, best * 1e3, bestRows,
                  100.0 * wBytes / (best * 1e-3) / copyBw, evenMs * 1e3, 100.0 * wBytes / (evenMs * 1e-3) / copyBw, evenMs / best);
    }
  }
  if (!pdl) {
    cudaFree(ws);
    return;
  }
  kvsk_set_programmatic_launch(1);
  std::printf("\neven GEMV, bf16, chains of 16 with PDL (per-kernel us, %% of copy bandwidth)\n");
  std::printf("%-8s %3s %18s %16s %16s\n", "weight", "M", "gemv best (rows)", "even, 1 wave", "even, 2 waves");
  for (const GemvShape& s : kGemvShapes) {
    if (std::string(s.name) == "lm_head") continue;
    const double wBytes = (double)s.N * s.K * 2;
    const GemvBuffers buf(s, 17, 900, 8);
    const int one = kvsk_gemv_even_ctas(s.N, s.K, numSms);
    for (int M : {1, 8}) {
      auto chain = [&](const std::function<void(int)>& launch) {
        return 1e3 / 16 * timeMs([&](int i) {
          for (int j = 0; j < 16; ++j) launch(i * 16 + j);
        });
      };
      double best = 1e30;
      int bestRows = 0;
      for (int rows : {4, 2, 1}) {
        const double us = chain([&](int i) { plain(buf, s, i, M, rows); });
        if (us < best) { best = us; bestRows = rows; }
      }
      const double us1 = chain([&](int i) { even(buf, s, i, M, one); });
      const double us2 = chain([&](int i) { even(buf, s, i, M, 2 * one); });
      std::printf("%-8s %3d %8.1f (%d, %3.0f%%) %8.1f (%3.0f%%) %8.1f (%3.0f%%)\n", s.name, M, best, bestRows,
                  100.0 * wBytes / (best * 1e-6) / copyBw, us1, 100.0 * wBytes / (us1 * 1e-6) / copyBw, us2,
                  100.0 * wBytes / (us2 * 1e-6) / copyBw);
    }
  }
  kvsk_set_programmatic_launch(0);
  cudaFree(ws);
}

// FP8 copies of one weight (quantized on the device from random bf16, enough copies, > 1.5 GiB, that no timed
// run finds its weight in L2), an X of `rows` rows and a Y for them; freed on destruction.
struct Fp8Buffers {
  std::vector<void*> w8;
  std::vector<float*> ws;
  void* x = nullptr;
  void* y = nullptr;
  Fp8Buffers(const GemvShape& s, int minCopies, int rows) {
    const size_t wElems = (size_t)s.N * s.K;
    const int copies = std::max<int>(minCopies, (int)((size_t(3) << 29) / wElems) + 1);
    void* src = devRandom(wElems, KVSK_BF16, 100, 0.05f);
    for (int c = 0; c < copies; ++c) {
      void* q = nullptr;
      float* sc = nullptr;
      CK(cudaMalloc(&q, wElems));
      CK(cudaMalloc(&sc, (size_t)s.N * sizeof(float)));
      kvsk_quantize_weight_fp8_params p{src, q, sc, s.N, s.K, KVSK_BF16};
      CK(kvsk_quantize_weight_fp8(&p, stream));
      w8.push_back(q);
      ws.push_back(sc);
    }
    CK(cudaStreamSynchronize(stream));
    cudaFree(src);
    x = devRandom((size_t)rows * s.K, KVSK_BF16, 7);
    CK(cudaMalloc(&y, (size_t)rows * s.N * 2));
  }
  ~Fp8Buffers() {
    for (void* w : w8) cudaFree(w);
    for (float* w : ws) cudaFree(w);
    cudaFree(x);
    cudaFree(y);
  }
  const void* w(int i) const { return w8[i % w8.size()]; }
  const float* scale(int i) const { return ws[i % ws.size()]; }
};

// One FP8 GEMV launch (kernels/gemv_fp8.cu, or gemv_fp8_v2.cu for version 2) on copy i of the weights.
void fp8Gemv(const Fp8Buffers& f8, const GemvShape& s, int i, int M, int rows, int version) {
  kvsk_gemv_fp8_params g{f8.x, f8.w(i), f8.scale(i), f8.y, M, s.N, s.K, KVSK_BF16, rows, version};
  CK(kvsk_gemv_fp8(&g, stream));
}

void fp8GemvBench(double copyBw) {
  std::printf("\nFP8-weight GEMV, bf16 x and y (weight bytes / time; %% of copy bandwidth %.2f TB/s): v1 at 16 rows per CTA, "
              "v2 at its best of 16, 32, 64; beside the bf16 GEMV\n", copyBw / 1e12);
  std::printf("%-8s %6s %6s %3s %10s %8s %6s %10s %6s %5s %12s %6s %8s\n", "weight", "N", "K", "M", "v1 us", "TB/s", "%copy",
              "v2 us", "%copy", "rows", "bf16 gemv us", "%copy", "v2/bf16");
  for (const GemvShape& s : kGemvShapes) {
    const double wBytes = (double)s.N * s.K;
    const Fp8Buffers f8(s, 2, KVSK_GEMV_FP8_MAX_M);
    const GemvBuffers b16(s, 2, 100, KVSK_GEMV_MAX_M);
    for (int M : {1, 4, 8, 16}) {
      const double v1Ms = timeMs([&](int i) { fp8Gemv(f8, s, i, M, 16, 1); });
      double v2Ms = 1e30;
      int v2Rows = 0;
      for (int rows : {16, 32, 64}) {
        const double ms = timeMs([&](int i) { fp8Gemv(f8, s, i, M, rows, 2); });
        if (ms < v2Ms) v2Ms = ms, v2Rows = rows;
      }
      std::printf("%-8s %6d %6d %3d %10.1f %8.2f %5.0f%% %10.1f %5.0f%% %5d", s.name, s.N, s.K, M, v1Ms * 1e3,
                  wBytes / (v1Ms * 1e-3) / 1e12, 100.0 * wBytes / (v1Ms * 1e-3) / copyBw, v2Ms * 1e3,
                  100.0 * wBytes / (v2Ms * 1e-3) / copyBw, v2Rows);
      if (M <= KVSK_GEMV_MAX_M) {
        const double bfMs = timeMs([&](int i) {
          kvsk_gemv_params g{b16.x, b16.w(i), b16.y, M, s.N, s.K, KVSK_BF16};
          CK(kvsk_gemv(&g, stream));
        });
        std::printf(" %12.1f %5.0f%% %7.2fx\n", bfMs * 1e3, 100.0 * 2 * wBytes / (bfMs * 1e-3) / copyBw, bfMs / v2Ms);
      } else {
        std::printf(" %12s\n", "-");
      }
    }
  }
  // As gemvChainBench: 16 back-to-back launches per timed run, rotating weights, the layer weights only; v1 and
  // v2 at each of their CTA shapes (the runner times these per M bucket and keeps the fastest).
  std::printf("\nFP8 GEMV chains of 16, programmatic dependent launch (per-kernel us, %% of copy bandwidth)\n");
  std::printf("%-8s %3s %14s %14s %14s %14s %14s %14s\n", "weight", "M", "v1 16 rows", "v1 32 rows", "v1 64 rows",
              "v2 16 rows", "v2 32 rows", "v2 64 rows");
  kvsk_set_programmatic_launch(1);
  for (const GemvShape& s : kGemvShapes) {
    if (std::string(s.name) == "lm_head") continue;
    const double wBytes = (double)s.N * s.K;
    const Fp8Buffers f8(s, 17, KVSK_GEMV_FP8_MAX_M);
    for (int M : {1, 8, 16}) {
      std::printf("%-8s %3d", s.name, M);
      for (int version : {1, 2})
        for (int rows : {16, 32, 64}) {
          const double us = 1e3 / 16 * timeMs([&](int i) {
            for (int j = 0; j < 16; ++j) fp8Gemv(f8, s, i * 16 + j, M, rows, version);
          });
          std::printf(" %7.1f (%3.0f%%)", us, 100.0 * wBytes / (us * 1e-6) / copyBw);
        }
      std::printf("\n");
    }
  }
  kvsk_set_programmatic_launch(0);
}

// Both runners in fast mode, planned (timed) on their weights up to M = 8192, as an engine load plans them;
// weights rotate over copies so that the small-M rows are not served from L2.
void fp8GemmBench() {
  const int maxM = 8192;
  const kvs::DType bf = kvs::DType::BF16;
  kvs::cuda::GemmRunner bf16(stream, maxM, kvs::cuda::GemmMode::Fast), fp8(stream, maxM, kvs::cuda::GemmMode::Fast);
  std::printf("\nGEMM, bf16 GemmRunner against runFp8 (fast mode, timed plans; TFLOP/s of 2 M N K)\n");
  std::printf("%-8s %6s %6s %5s %11s %8s %11s %8s %-9s %11s %8s\n", "weight", "N", "K", "M", "bf16 us", "TFLOP/s", "fp8 us",
              "TFLOP/s", "fp8 path", "quantize us", "speedup");
  for (const GemvShape& s : kGemvShapes) {
    const Fp8Buffers f8(s, 2, maxM);
    const GemvBuffers b16(s, 2, 100, maxM);
    bf16.plan(s.N, s.K, bf, bf, b16.w(0));
    fp8.planFp8(s.N, s.K, bf, f8.w(0), f8.scale(0));
    for (int M : {16, 64, 256, 2048, 8192}) {
      const double flops = 2.0 * M * s.N * s.K;
      const double bfMs = timeMs([&](int i) { bf16.run(b16.x, b16.w(i), b16.y, M, s.N, s.K, bf, bf); });
      const double f8Ms = timeMs([&](int i) { fp8.runFp8(f8.x, f8.w(i), f8.scale(i), f8.y, M, s.N, s.K, bf); });
      const bool gemv = fp8.fp8UsesGemv(s.N, s.K, bf, M);
      std::printf("%-8s %6d %6d %5d %11.1f %8.1f %11.1f %8.1f %-9s", s.name, s.N, s.K, M, bfMs * 1e3,
                  flops / (bfMs * 1e-3) / 1e12, f8Ms * 1e3, flops / (f8Ms * 1e-3) / 1e12, gemv ? "gemv" : "cuBLASLt");
      if (!gemv) {
        void* xq = nullptr;
        float* xs = nullptr;
        CK(cudaMalloc(&xq, (size_t)M * s.K));
        CK(cudaMalloc(&xs, (size_t)M * sizeof(float)));
        const double qMs = timeMs([&](int) {
          kvsk_quantize_rows_fp8_params q{f8.x, xq, xs, M, s.K, KVSK_BF16};
          CK(kvsk_quantize_rows_fp8(&q, stream));
        });
        cudaFree(xq);
        cudaFree(xs);
        std::printf(" %11.1f", qMs * 1e3);
      } else {
        std::printf(" %11s", "-");
      }
      std::printf(" %7.2fx\n", bfMs / f8Ms);
    }
    std::printf("  plan fp8 %s: %s\n", s.name, fp8.describeFp8(s.N, s.K, bf).c_str());
  }
}

// The batch-1 step's situation: 16 back-to-back GEMMs at M = 1 with programmatic dependent launch, rotating
// weights (the layer weights only), ours against the GEMV (4 rows per CTA, the engine's usual pick).
void invChainBench(double copyBw, kvs::cuda::GemmRunner& own) {
  const kvs::DType bf = kvs::DType::BF16;
  std::printf("\nchains of 16 at M = 1 with PDL (per-kernel us, %% of copy bandwidth %.2f TB/s): ours against the GEMV\n",
              copyBw / 1e12);
  std::printf("%-8s %16s %16s\n", "weight", "ours", "GEMV, 4 rows");
  kvsk_set_programmatic_launch(1);
  for (const GemvShape& s : kGemvShapes) {
    if (std::string(s.name) == "lm_head") continue;
    const double wBytes = (double)s.N * s.K * 2;
    const GemvBuffers buf(s, 17, 700, 1);
    CK(cudaStreamSynchronize(stream));
    const double ours = 1e3 / 16 * timeMs([&](int i) {
      for (int j = 0; j < 16; ++j) own.run(buf.x, buf.w(i * 16 + j), buf.y, 1, s.N, s.K, bf, bf);
    });
    const double gemv = 1e3 / 16 * timeMs([&](int i) {
      for (int j = 0; j < 16; ++j) {
        kvsk_gemv_params g{buf.x, buf.w(i * 16 + j), buf.y, 1, s.N, s.K, KVSK_BF16, 4};
        CK(kvsk_gemv(&g, stream));
      }
    });
    std::printf("%-8s %8.1f (%3.0f%%) %8.1f (%3.0f%%)\n", s.name, ours, 100.0 * wBytes / (ours * 1e-6) / copyBw, gemv,
                100.0 * wBytes / (gemv * 1e-6) / copyBw);
  }
  kvsk_set_programmatic_launch(0);
}

// Ours (GemmRunner, batch-invariant with InvariantGemm::Own: the automatic tile and split) beside cuBLASLt's fast
// mode and its batch-invariant algorithm, weights rotating over copies; then ours with every tile and split forced.
void invBench(double copyBw, bool prop9) {
  const int maxM = 8192;
  const kvs::DType bf = kvs::DType::BF16;
  int numSms = 0;
  CK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, 0));
  kvs::cuda::GemmRunner fast(stream, maxM, kvs::cuda::GemmMode::Fast);
  kvs::cuda::GemmRunner cub(stream, maxM, kvs::cuda::GemmMode::BatchInvariant, 256);
  kvs::cuda::GemmRunner own(stream, maxM, kvs::cuda::GemmMode::BatchInvariant, 256, 32u << 20, kvs::cuda::InvariantGemm::Own);
  const int ms[] = {1, 8, 64, 256, 2048, 8192};
  std::printf("\nbatch-invariant GEMM, bf16: ours (gemm_inv) vs cuBLASLt fast mode vs cuBLASLt batch-invariant (us; TFLOP/s; "
              "M <= 64: %% of copy bandwidth %.2f TB/s for the weight bytes)\n", copyBw / 1e12);
  std::printf("%-8s %6s %6s %5s %-18s %10s %7s %6s %10s %7s %10s %7s %8s %8s\n", "weight", "N", "K", "M", "ours: tile", "ours us",
              "TFLOP/s", "%copy", "fast us", "TFLOP/s", "inv us", "TFLOP/s", "/fast", "/inv");
  struct Alt { kvsk_gemm_inv_tile tile; int split; const char* name; };
  const Alt alts[] = {{KVSK_GEMM_INV_TILE_16x64, 0, "16x64"}, {KVSK_GEMM_INV_TILE_16x64, 1, "16x64 s"},
                      {KVSK_GEMM_INV_TILE_64x128, 0, "64x128"}, {KVSK_GEMM_INV_TILE_64x128, 1, "64x128 s"},
                      {KVSK_GEMM_INV_TILE_128x128, 0, "128x128"}, {KVSK_GEMM_INV_TILE_128x128, 1, "128x128 s"}};
  std::vector<std::string> altLines;
  for (const GemvShape& s : kGemvShapes) {
    const GemvBuffers buf(s, 2, 900, maxM);
    CK(cudaStreamSynchronize(stream));  // the weights are read before the programmatic-launch wait
    fast.plan(s.N, s.K, bf, bf, buf.w(0));
    cub.plan(s.N, s.K, bf, bf);
    own.plan(s.N, s.K, bf, bf);
    const int splits = own.ownSplits(s.N, s.K, bf, bf);
    // Forced split needs the workspace of every M: sized for the largest.
    const size_t wsBytes = 64 * 1024 + (splits > 1 ? sizeof(float) * (size_t)splits * maxM * s.N : 0);
    void* ws = nullptr;
    CK(cudaMalloc(&ws, wsBytes));
    CK(cudaMemset(ws, 0, wsBytes));
    for (int M : ms) {
      const double flops = 2.0 * M * s.N * s.K, wBytes = 2.0 * s.N * s.K;
      const double oMs = timeMs([&](int i) { own.run(buf.x, buf.w(i), buf.y, M, s.N, s.K, bf, bf); });
      const double fMs = timeMs([&](int i) { fast.run(buf.x, buf.w(i), buf.y, M, s.N, s.K, bf, bf); });
      const double cMs = timeMs([&](int i) { cub.run(buf.x, buf.w(i), buf.y, M, s.N, s.K, bf, bf); });
      const kvsk_gemm_inv_params auto_{buf.x, buf.w(0), buf.y, M, s.N, s.K, KVSK_BF16, splits, KVSK_GEMM_INV_TILE_AUTO, -1,
                                       ws, wsBytes, numSms};
      const kvsk_gemm_inv_choice ch = kvsk_gemm_inv_choose(&auto_);
      const char* tn = ch.tile == KVSK_GEMM_INV_TILE_16x64 ? "16x64" : ch.tile == KVSK_GEMM_INV_TILE_64x128 ? "64x128" : "128x128";
      char copy[16] = "-";
      if (M <= 64) std::snprintf(copy, sizeof copy, "%5.0f%%", 100.0 * wBytes / (oMs * 1e-3) / copyBw);
      std::printf("%-8s %6d %6d %5d %-18s %10.1f %7.1f %6s %10.1f %7.1f %10.1f %7.1f %7.2fx %7.2fx\n", s.name, s.N, s.K, M,
                  (std::string(tn) + (ch.split ? " split " : " ") + "S" + std::to_string(splits)).c_str(), oMs * 1e3,
                  flops / (oMs * 1e-3) / 1e12, copy, fMs * 1e3, flops / (fMs * 1e-3) / 1e12, cMs * 1e3,
                  flops / (cMs * 1e-3) / 1e12, oMs / fMs, oMs / cMs);
      std::string line = std::string(s.name) + " M" + std::to_string(M) + ":";
      for (const Alt& a : alts) {
        kvsk_gemm_inv_params p = auto_;
        p.tile = a.tile;
        p.split = a.split;
        if (a.split && !kvsk_gemm_inv_choose(&p).split) continue;  // one partition: the same as sequential
        // A small tile at large M re-reads W per 8 tile rows: skip what would take seconds.
        const int bm = a.tile == KVSK_GEMM_INV_TILE_16x64 ? 16 : a.tile == KVSK_GEMM_INV_TILE_64x128 ? 64 : 128;
        if ((double)M / bm / 8 * wBytes > 12e9) continue;
        const double ms = timeMs([&](int i) {
          p.w = buf.w(i);
          CK(kvsk_gemm_inv(&p, stream));
        });
        char cell[48];
        std::snprintf(cell, sizeof cell, " %s %.1f", a.name, ms * 1e3);
        line += cell;
      }
      altLines.push_back(line);
    }
    std::printf("  plans %s: ours %s; fast %s; inv %s\n", s.name, own.describe(s.N, s.K, bf, bf).c_str(),
                fast.describe(s.N, s.K, bf, bf).c_str(), cub.describe(s.N, s.K, bf, bf).c_str());
    cudaFree(ws);
  }
  std::printf("(/fast, /inv: our time over theirs)\nours with the tile and split forced (us; s = split over the k-partitions):\n");
  for (const std::string& l : altLines) std::printf("  %s\n", l.c_str());
  if (prop9) invChainBench(copyBw, own);
}

// The wgmma GEMM (GemmRunner, batch-invariant with InvariantGemm::Wgmma: the automatic tile and split) beside
// cuBLASLt's fast mode, cuBLASLt's batch-invariant algorithm and gemm_inv.cu, weights rotating over copies; then
// ours with every tile and split forced; then chains of 16 at M = 1 against the GEMV.
void wgmmaBench(double copyBw) {
  if (const char* why = kvsk_gemm_wgmma_unavailable()) {
    std::printf("\nwgmma GEMM: not on this device (%s)\n", why);
    return;
  }
  const int maxM = 8192;
  const kvs::DType bf = kvs::DType::BF16;
  int numSms = 0;
  CK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, 0));
  kvs::cuda::GemmRunner fast(stream, maxM, kvs::cuda::GemmMode::Fast);
  kvs::cuda::GemmRunner cub(stream, maxM, kvs::cuda::GemmMode::BatchInvariant, 256);
  kvs::cuda::GemmRunner inv(stream, maxM, kvs::cuda::GemmMode::BatchInvariant, 256, 32u << 20, kvs::cuda::InvariantGemm::Own);
  kvs::cuda::GemmRunner wg(stream, maxM, kvs::cuda::GemmMode::BatchInvariant, 256, 32u << 20, kvs::cuda::InvariantGemm::Wgmma);
  const int ms[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
  const int forcedMs[] = {1, 8, 64, 128, 256, 2048, 8192};
  std::printf("\nbatch-invariant GEMM on wgmma, bf16: ours (gemm_wgmma) vs cuBLASLt fast mode vs cuBLASLt batch-invariant vs "
              "gemm_inv (us; TFLOP/s; M <= 64: %% of copy bandwidth %.2f TB/s for the weight bytes)\n", copyBw / 1e12);
  std::printf("%-8s %6s %6s %5s %-18s %10s %7s %6s %10s %7s %10s %7s %10s %8s %8s\n", "weight", "N", "K", "M", "ours: tile",
              "ours us", "TFLOP/s", "%copy", "fast us", "TFLOP/s", "inv us", "TFLOP/s", "gemm_inv", "/fast", "/inv");
  struct Alt { kvsk_gemm_wgmma_tile tile; int split; const char* name; };
  const Alt alts[] = {{KVSK_GEMM_WGMMA_TILE_64x128, 0, "64x128"}, {KVSK_GEMM_WGMMA_TILE_64x128, 1, "64x128 s"},
                      {KVSK_GEMM_WGMMA_TILE_128x128, 0, "128x128"}, {KVSK_GEMM_WGMMA_TILE_128x128, 1, "128x128 s"},
                      {KVSK_GEMM_WGMMA_TILE_128x256, 0, "128x256"}, {KVSK_GEMM_WGMMA_TILE_128x256, 1, "128x256 s"}};
  const char* tileNames[] = {"", "64x128", "128x128", "128x256"};
  std::vector<std::string> altLines;
  for (const GemvShape& s : kGemvShapes) {
    const GemvBuffers buf(s, 2, 900, maxM);
    CK(cudaStreamSynchronize(stream));  // the weights are read before the programmatic-launch wait
    fast.plan(s.N, s.K, bf, bf, buf.w(0));
    cub.plan(s.N, s.K, bf, bf);
    inv.plan(s.N, s.K, bf, bf);
    wg.plan(s.N, s.K, bf, bf);
    const int splits = wg.ownSplits(s.N, s.K, bf, bf);
    // Forced split needs the workspace of every M: sized for the largest.
    const size_t wsBytes = 64 * 1024 + (splits > 1 ? sizeof(float) * (size_t)splits * maxM * s.N : 0);
    void* ws = nullptr;
    CK(cudaMalloc(&ws, wsBytes));
    CK(cudaMemset(ws, 0, wsBytes));
    for (int M : ms) {
      const double flops = 2.0 * M * s.N * s.K, wBytes = 2.0 * s.N * s.K;
      const double oMs = timeMs([&](int i) { wg.run(buf.x, buf.w(i), buf.y, M, s.N, s.K, bf, bf); });
      const double fMs = timeMs([&](int i) { fast.run(buf.x, buf.w(i), buf.y, M, s.N, s.K, bf, bf); });
      const double cMs = timeMs([&](int i) { cub.run(buf.x, buf.w(i), buf.y, M, s.N, s.K, bf, bf); });
      const double iMs = timeMs([&](int i) { inv.run(buf.x, buf.w(i), buf.y, M, s.N, s.K, bf, bf); });
      const kvsk_gemm_wgmma_params auto_{buf.x, buf.w(0), buf.y, M, s.N, s.K, KVSK_BF16, splits, KVSK_GEMM_WGMMA_TILE_AUTO, -1,
                                         ws, wsBytes, numSms};
      const kvsk_gemm_wgmma_choice ch = kvsk_gemm_wgmma_choose(&auto_);
      char copy[16] = "-";
      if (M <= 64) std::snprintf(copy, sizeof copy, "%5.0f%%", 100.0 * wBytes / (oMs * 1e-3) / copyBw);
      std::printf("%-8s %6d %6d %5d %-18s %10.1f %7.1f %6s %10.1f %7.1f %10.1f %7.1f %10.1f %7.2fx %7.2fx\n", s.name, s.N, s.K,
                  M, (std::string(tileNames[ch.tile]) + (ch.split ? " split " : " ") + "S" + std::to_string(splits)).c_str(),
                  oMs * 1e3, flops / (oMs * 1e-3) / 1e12, copy, fMs * 1e3, flops / (fMs * 1e-3) / 1e12, cMs * 1e3,
                  flops / (cMs * 1e-3) / 1e12, iMs * 1e3, oMs / fMs, oMs / cMs);
      if (std::find(std::begin(forcedMs), std::end(forcedMs), M) == std::end(forcedMs)) continue;
      std::string line = std::string(s.name) + " M" + std::to_string(M) + ":";
      for (const Alt& a : alts) {
        kvsk_gemm_wgmma_params p = auto_;
        p.tile = a.tile;
        p.split = a.split;
        const kvsk_gemm_wgmma_choice forced = kvsk_gemm_wgmma_choose(&p);
        if (forced.tile != a.tile || forced.split != a.split) continue;  // what another entry runs
        // A small tile at large M re-reads W per 8 tile rows: skip what would take seconds.
        if ((double)M / (a.tile == KVSK_GEMM_WGMMA_TILE_64x128 ? 64 : 128) / 8 * wBytes > 12e9) continue;
        const double t = timeMs([&](int i) {
          p.w = buf.w(i);
          CK(kvsk_gemm_wgmma(&p, stream));
        });
        char cell[48];
        std::snprintf(cell, sizeof cell, " %s %.1f", a.name, t * 1e3);
        line += cell;
      }
      altLines.push_back(line);
    }
    std::printf("  plans %s: ours %s; fast %s; inv %s\n", s.name, wg.describe(s.N, s.K, bf, bf).c_str(),
                fast.describe(s.N, s.K, bf, bf).c_str(), cub.describe(s.N, s.K, bf, bf).c_str());
    cudaFree(ws);
  }
  std::printf("(/fast, /inv: our time over theirs; gemm_inv: us)\nours with the tile and split forced (us; s = split over the "
              "k-partitions):\n");
  for (const std::string& l : altLines) std::printf("  %s\n", l.c_str());
  invChainBench(copyBw, wg);
}

// The hybrid's small-M kernels side by side (see gemv-inv in the usage above).
void gemvInvBench(double copyBw) {
  if (kvsk_gemm_wgmma_unavailable()) return;
  int numSms = 0;
  CK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, 0));
  const size_t wsBytes = 64 * 1024 + sizeof(float) * 16 * 16 * 28672;
  void* ws = nullptr;
  CK(cudaMalloc(&ws, wsBytes));
  CK(cudaMemset(ws, 0, wsBytes));
  const kvs::DType bf = kvs::DType::BF16;
  kvs::cuda::GemmRunner hybrid(stream, 256, kvs::cuda::GemmMode::BatchInvariant, 0, 32u << 20, kvs::cuda::InvariantGemm::Hybrid);
  std::printf("\nbatch-invariant small M on wgmma's k-partitions, bf16 (us; %% of copy bandwidth %.2f TB/s for the weight "
              "bytes): single launches | chains of 16 with PDL (gv nt: gemv_inv with nt n8 tiles a warp)\n", copyBw / 1e12);
  std::printf("%-8s %3s %3s | %13s %13s %13s %13s | %13s %13s %13s %13s %13s\n", "weight", "M", "S", "gemm_inv",
              "gv nt1", "gv nt2", "GEMV 4 rows", "gemm_inv", "gv nt1", "gv nt2", "GEMV 4 rows", "hybrid runner");
  for (const GemvShape& s : kGemvShapes) {
    if (std::string(s.name) == "lm_head") continue;  // one partition, as gate/up (and 17 copies would be 17 GB)
    const int splits = kvsk_gemm_wgmma_splits(s.N, s.K, numSms);
    const double wBytes = 2.0 * s.N * s.K;
    const GemvBuffers buf(s, 17, 500, 16);
    CK(cudaStreamSynchronize(stream));
    hybrid.plan(s.N, s.K, bf, bf, buf.w(0));
    auto cell = [&](double ms) {
      char c[32];
      std::snprintf(c, sizeof c, "%6.1f (%3.0f%%)", ms * 1e3, 100.0 * wBytes / (ms * 1e-3) / copyBw);
      return std::string(c);
    };
    for (int M : {1, 2, 4, 8, 16}) {
      std::vector<std::function<void(int)>> fns;
      fns.push_back([&](int i) {
        const kvsk_gemm_inv_params p{buf.x, buf.w(i), buf.y, M, s.N, s.K, KVSK_BF16, splits, KVSK_GEMM_INV_TILE_16x64, -1,
                                     ws, wsBytes, numSms};
        CK(kvsk_gemm_inv(&p, stream));
      });
      for (const int nt : {1, 2})
        fns.push_back([&, nt](int i) {
          const kvsk_gemv_inv_params p{buf.x, buf.w(i), buf.y, M, s.N, s.K, KVSK_BF16, splits, nt};
          CK(kvsk_gemv_inv(&p, stream));
        });
      fns.push_back([&](int i) {
        const kvsk_gemv_params g{buf.x, buf.w(i), buf.y, M, s.N, s.K, KVSK_BF16, 4};
        CK(kvsk_gemv(&g, stream));
      });
      const std::string blank(13, ' ');
      std::string line;
      kvsk_set_programmatic_launch(0);
      for (size_t f = 0; f < fns.size(); ++f) line += (f == 3 && M > 8 ? blank : cell(timeMs(fns[f]))) + " ";
      line += "|";
      kvsk_set_programmatic_launch(1);
      auto chain = [&](const std::function<void(int)>& f) {
        return timeMs([&](int i) { for (int j = 0; j < 16; ++j) f(i * 16 + j); }) / 16;
      };
      for (size_t f = 0; f < fns.size(); ++f) line += " " + (f == 3 && M > 8 ? blank : cell(chain(fns[f])));
      line += " " + cell(chain([&](int i) { hybrid.run(buf.x, buf.w(i), buf.y, M, s.N, s.K, bf, bf); }));
      kvsk_set_programmatic_launch(0);
      std::printf("%-8s %3d %3d | %s\n", s.name, M, splits, line.c_str());
    }
    std::printf("  hybrid plan %s: %s\n", s.name, hybrid.describe(s.N, s.K, bf, bf).c_str());
  }
  cudaFree(ws);
}

// One row of fp8FuseBench: median time, the bytes it moves, and those against the copy ceiling; baseUs > 0
// adds baseUs / time. Returns the time in us.
double fuseRow(const char* what, int M, double bytes, double copyBw, double baseUs, const std::function<void(int)>& fn) {
  const double us = timeMs(fn) * 1e3;
  const double ceilingUs = bytes / copyBw * 1e6;
  std::printf("%-30s %5d %9.1f %9.1f %8.2f %5.0f%% %11.1f", what, M, us, bytes / 1e6, bytes / (us * 1e-6) / 1e12,
              100.0 * ceilingUs / us, ceilingUs);
  if (baseUs > 0) std::printf(" %7.2fx", baseUs / us);
  std::printf("\n");
  return us;
}

void fp8FuseBench(double copyBw, bool pdl) {
  const int H = 4096, I = 14336, maxM = 8192;
  const kvsk_dtype dt = KVSK_BF16;
  kvsk_set_programmatic_launch(pdl);
  void* res = devRandom((size_t)maxM * H, dt, 11);
  void* add = devRandom((size_t)maxM * H, dt, 12, 1e-3f);  // small: every timed run adds it again
  void* w = devRandom(H, dt, 13);
  void* out = devRandom((size_t)maxM * std::max(H, I), dt, 14);
  void* gu = devRandom((size_t)maxM * 2 * I, dt, 15);
  void* xq = nullptr;
  float* xs = nullptr;
  CK(cudaMalloc(&xq, (size_t)maxM * std::max(H, I)));
  CK(cudaMalloc(&xs, (size_t)maxM * sizeof(float)));
  std::printf("\nFP8 GEMM inputs, bf16, %s (bytes moved / time; %% of the copy ceiling at %.2f TB/s)\n",
              pdl ? "programmatic dependent launch" : "plain launches", copyBw / 1e12);
  std::printf("%-30s %5s %9s %9s %8s %6s %11s %8s\n", "kernels", "M", "us", "MB", "TB/s", "%copy", "ceiling us", "speedup");
  for (int M : {2048, 8192}) {
    const double mh = (double)M * H, mi = (double)M * I;
    // add + norm: residual and add read, residual written (2 bytes each), then bf16 out (2) + quantize (2 in, 1
    // out) against e4m3 out (1); scales are M * 4 bytes either way.
    auto normQuant = [&](int) {
      kvsk_rmsnorm_params n{add, res, nullptr, w, out, M, H, 1e-5f, dt};
      CK(kvsk_rmsnorm(&n, stream));
      kvsk_quantize_rows_fp8_params q{out, xq, xs, M, H, dt};
      CK(kvsk_quantize_rows_fp8(&q, stream));
    };
    double base = fuseRow("rmsnorm, quantize_rows", M, mh * (2 + 2 + 2 + 2 + 2 + 1) + M * 4.0, copyBw, 0, normQuant);
    fuseRow("rmsnorm -> e4m3 (fused)", M, mh * (2 + 2 + 2 + 1) + M * 4.0, copyBw, base, [&](int) {
      kvsk_rmsnorm_params n{add, res, nullptr, w, nullptr, M, H, 1e-5f, dt, xq, xs};
      CK(kvsk_rmsnorm(&n, stream));
    });
    fuseRow("  rmsnorm alone (bf16 out)", M, mh * (2 + 2 + 2 + 2), copyBw, 0, [&](int) {
      kvsk_rmsnorm_params n{add, res, nullptr, w, out, M, H, 1e-5f, dt};
      CK(kvsk_rmsnorm(&n, stream));
    });
    // SiLU·mul: gate and up read (2 bytes each), bf16 out (2) + quantize (2 in, 1 out): down_proj's input, which
    // has no fused form (written, it ran at 0.84-0.87x of this pair: kvserve_kernels.h).
    auto siluQuant = [&](int) {
      kvsk_silu_mul_params sm{gu, out, M, I, dt};
      CK(kvsk_silu_mul(&sm, stream));
      kvsk_quantize_rows_fp8_params q{out, xq, xs, M, I, dt};
      CK(kvsk_quantize_rows_fp8(&q, stream));
    };
    fuseRow("silu_mul, quantize_rows", M, mi * (2 + 2 + 2 + 2 + 1) + M * 4.0, copyBw, 0, siluQuant);
    fuseRow("  silu_mul alone (bf16 out)", M, mi * (2 + 2 + 2), copyBw, 0, [&](int) {
      kvsk_silu_mul_params sm{gu, out, M, I, dt};
      CK(kvsk_silu_mul(&sm, stream));
    });
  }
  std::printf("(speedup: the separate pair's time / the fused kernel's)\n");
  for (void* p : {res, add, w, out, gu, xq, (void*)xs}) cudaFree(p);
  kvsk_set_programmatic_launch(0);
}

// Random int8 copies of one weight with a scale per row (> 1.5 GiB of copies, so that no timed run finds its
// weight in L2), an X of `rows` bf16 rows, its quantized rows and scales, and a Y; freed on destruction.
struct Int8Buffers {
  std::vector<void*> ws;
  float* wScale = nullptr;
  void* x = nullptr;
  void* xq = nullptr;
  float* xScale = nullptr;
  void* y = nullptr;
  Int8Buffers(const GemvShape& s, int minCopies, int rows) {
    const size_t wElems = (size_t)s.N * s.K;
    const int copies = std::max<int>(minCopies, (int)((size_t(3) << 29) / wElems) + 1);
    std::vector<int8_t> host(wElems);
    std::mt19937 g(11);
    for (auto& b : host) b = static_cast<int8_t>(int(g() % 255) - 127);
    for (int c = 0; c < copies; ++c) {
      void* w = nullptr;
      CK(cudaMalloc(&w, wElems));
      CK(cudaMemcpy(w, host.data(), wElems, cudaMemcpyHostToDevice));
      ws.push_back(w);
    }
    const std::vector<float> scales(s.N, 1.f / 4096);
    CK(cudaMalloc(&wScale, s.N * sizeof(float)));
    CK(cudaMemcpy(wScale, scales.data(), s.N * sizeof(float), cudaMemcpyHostToDevice));
    x = devRandom((size_t)rows * s.K, KVSK_BF16, 7);
    CK(cudaMalloc(&xq, (size_t)rows * s.K));
    CK(cudaMalloc(&xScale, rows * sizeof(float)));
    kvsk_quantize_rows_int8_params q{x, nullptr, xq, xScale, rows, s.K, KVSK_BF16};
    CK(kvsk_quantize_rows_int8(&q, stream));
    CK(cudaMalloc(&y, (size_t)rows * s.N * 2));
  }
  ~Int8Buffers() {
    for (void* w : ws) cudaFree(w);
    cudaFree(wScale);
    cudaFree(x);
    cudaFree(xq);
    cudaFree(xScale);
    cudaFree(y);
  }
  const void* w(int i) const { return ws[i % ws.size()]; }
};

void int8GemvBench(double copyBw) {
  std::printf("\nint8 GEMV (on quantized x) beside the bf16 GEMV (weight bytes / time; %% of copy bandwidth %.2f TB/s)\n",
              copyBw / 1e12);
  std::printf("%-8s %6s %6s %3s %10s %8s %6s %10s %8s\n", "weight", "N", "K", "M", "int8 us", "TB/s", "%copy", "bf16 us", "speedup");
  for (const GemvShape& s : kGemvShapes) {
    const double wBytes = (double)s.N * s.K;
    const Int8Buffers i8(s, 2, KVSK_GEMV_INT8_MAX_M);
    const GemvBuffers b16(s, 2, 100, 8);
    for (int M : {1, 4, 8, 16}) {
      const double i8Ms = timeMs([&](int i) {
        kvsk_gemv_int8_params g{i8.xq, i8.xScale, i8.w(i), i8.wScale, i8.y, M, s.N, s.K, KVSK_BF16, 16};
        CK(kvsk_gemv_int8(&g, stream));
      });
      std::printf("%-8s %6d %6d %3d %10.1f %8.2f %5.0f%%", s.name, s.N, s.K, M, i8Ms * 1e3, wBytes / (i8Ms * 1e-3) / 1e12,
                  100.0 * wBytes / (i8Ms * 1e-3) / copyBw);
      if (M <= KVSK_GEMV_MAX_M) {
        const double bfMs = timeMs([&](int i) {
          kvsk_gemv_params g{b16.x, b16.w(i), b16.y, M, s.N, s.K, KVSK_BF16};
          CK(kvsk_gemv(&g, stream));
        });
        std::printf(" %10.1f %7.2fx\n", bfMs * 1e3, bfMs / i8Ms);
      } else {
        std::printf(" %10s %8s\n", "-", "-");
      }
    }
  }
}

// Both runners in fast mode, planned (timed) on their weights up to M = 8192, as an engine load plans them.
void int8GemmBench() {
  const int maxM = 8192;
  const kvs::DType bf = kvs::DType::BF16;
  kvs::cuda::GemmRunner bf16(stream, maxM, kvs::cuda::GemmMode::Fast), int8(stream, maxM, kvs::cuda::GemmMode::Fast);
  std::printf("\nGEMM, bf16 GemmRunner against runInt8 (fast mode, timed plans; TFLOP/s of 2 M N K; int8 includes the "
              "quantization and dequantization)\n");
  std::printf("%-8s %6s %6s %5s %11s %8s %11s %8s %-9s %8s\n", "weight", "N", "K", "M", "bf16 us", "TFLOP/s", "int8 us",
              "TFLOP/s", "int8 path", "speedup");
  for (const GemvShape& s : kGemvShapes) {
    const Int8Buffers i8(s, 2, maxM);
    const GemvBuffers b16(s, 2, 100, maxM);
    bf16.plan(s.N, s.K, bf, bf, b16.w(0));
    int8.planInt8(s.N, s.K, bf, i8.w(0), i8.wScale);
    for (int M : {16, 64, 256, 2048, 8192}) {
      const double flops = 2.0 * M * s.N * s.K;
      const double bfMs = timeMs([&](int i) { bf16.run(b16.x, b16.w(i), b16.y, M, s.N, s.K, bf, bf); });
      const double i8Ms = timeMs([&](int i) { int8.runInt8(i8.x, nullptr, i8.w(i), i8.wScale, i8.y, M, s.N, s.K, bf); });
      std::printf("%-8s %6d %6d %5d %11.1f %8.1f %11.1f %8.1f %-9s %7.2fx\n", s.name, s.N, s.K, M, bfMs * 1e3,
                  flops / (bfMs * 1e-3) / 1e12, i8Ms * 1e3, flops / (i8Ms * 1e-3) / 1e12,
                  int8.int8UsesGemv(s.N, s.K, bf, M) ? "gemv" : "cuBLASLt", bfMs / i8Ms);
    }
    std::printf("  plan int8 %s: %s\n", s.name, int8.describeInt8(s.N, s.K, bf).c_str());
  }
}

struct AttnCase { const char* name; std::vector<int> qLens, ctx; int partition = 128; };
struct AttnTiming { double ms, kvBytes, flops; };

// Random e4m3 codes (no NaN) for an fp8 cache: a 1 MiB pattern repeated.
void* devE4m3(size_t bytes, uint32_t seed) {
  std::vector<uint8_t> pattern(1 << 20);
  std::mt19937 g(seed);
  for (auto& c : pattern) { c = (uint8_t)(g() & 0xFF); if ((c & 0x7F) == 0x7F) c ^= 1; }
  void* p = nullptr;
  CK(cudaMalloc(&p, bytes));
  CK(cudaMemcpy(p, pattern.data(), std::min(pattern.size(), bytes), cudaMemcpyHostToDevice));
  for (size_t at = pattern.size(); at < bytes; at += pattern.size())  // the rest from the first MiB, on the device
    CK(cudaMemcpy(static_cast<char*>(p) + at, p, std::min(pattern.size(), bytes - at), cudaMemcpyDeviceToDevice));
  return p;
}

// Llama-3-8B's attention (32 query / 8 KV heads, head_dim 128, 16-token blocks) for one case, queries in dt,
// the cache in dt or e4m3 (kv): the median time, the K+V bytes it reads and its useful flops.
AttnTiming timeAttention(const AttnCase& c, kvsk_dtype dt, kvsk_kv_dtype kv, kvsk_attn_prefill prefill = KVSK_ATTN_PREFILL_V1) {
  const int Hq = 32, Hkv = 8, D = 128, bs = 16;
  const int S = (int)c.qLens.size(), partition = c.partition;
  std::vector<int32_t> qs(S + 1, 0), ctx(c.ctx.begin(), c.ctx.end());
  int maxBlocks = 0, totalBlocks = 0;
  for (int s = 0; s < S; ++s) {
    qs[s + 1] = qs[s] + c.qLens[s];
    maxBlocks = std::max(maxBlocks, (ctx[s] + bs - 1) / bs);
    totalBlocks += (ctx[s] + bs - 1) / bs;
  }
  const int T = qs[S];
  std::vector<int> perm(totalBlocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(1));
  std::vector<int32_t> table((size_t)S * maxBlocks, 0);
  for (int s = 0, next = 0; s < S; ++s)
    for (int b = 0; b * bs < ctx[s]; ++b) table[(size_t)s * maxBlocks + b] = perm[next++];
  std::vector<int32_t> tileSeq(T), tileQ(T), tileSlot(T);
  kvsk_attention_plan_info info{};
  if (kvsk_attention_plan(qs.data(), ctx.data(), S, Hq, Hkv, D, dt, partition, prefill, tileSeq.data(), tileQ.data(),
                          tileSlot.data(), T, &info) != 0)
    std::exit(2);
  auto up = [](const std::vector<int32_t>& v) {
    int32_t* d = nullptr;
    CK(cudaMalloc(&d, std::max<size_t>(1, v.size()) * 4));
    CK(cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
    return d;
  };
  const bool fp8 = kv == KVSK_KV_FP8_E4M3;
  const size_t cacheElems = (size_t)totalBlocks * bs * Hkv * D, kvElemBytes = fp8 ? 1 : 2;
  void* k = fp8 ? devE4m3(cacheElems, 1) : devRandom(cacheElems, dt, 1);
  void* v = fp8 ? devE4m3(cacheElems, 2) : devRandom(cacheElems, dt, 2);
  void* q = devRandom((size_t)T * Hq * D, dt, 3);
  void* out = devRandom((size_t)T * Hq * D, dt, 4);
  const size_t parts = (size_t)std::max(1, info.numSplitSlots) * Hq * info.maxSplits;
  float *pOut, *pMax, *pSum;
  CK(cudaMalloc(&pOut, parts * D * 4));
  CK(cudaMalloc(&pMax, parts * 4));
  CK(cudaMalloc(&pSum, parts * 4));
  kvsk_attention_params p{};
  p.q = q; p.kCache = k; p.vCache = v; p.out = out;
  p.blockTables = up(table); p.queryStart = up(qs); p.contextLens = up(ctx);
  p.tileSeq = up(tileSeq); p.tileQStart = up(tileQ); p.tileSplitSlot = up(tileSlot);
  p.partialOut = pOut; p.partialMax = pMax; p.partialSum = pSum;
  p.numTiles = info.numTiles; p.tokensPerTile = info.tokensPerTile; p.numSplitSlots = info.numSplitSlots;
  p.maxSplits = info.maxSplits; p.partitionSize = partition;
  p.numHeads = Hq; p.numKvHeads = Hkv; p.headDim = D; p.blockSize = bs; p.maxBlocksPerSeq = maxBlocks;
  p.scale = 1.f / std::sqrt((float)D); p.dtype = dt;
  p.cacheDtype = kv; p.kScale = 0.05f; p.vScale = 0.05f; p.prefill = info.prefill;
  const double ms = timeMs([&](int) { CK(kvsk_attention(&p, info.decode, stream)); });
  AttnTiming r{ms, 0, 0};
  for (int s = 0; s < S; ++s) {
    r.kvBytes += 2.0 * ctx[s] * Hkv * D * kvElemBytes;
    for (int j = 0; j < c.qLens[s]; ++j) r.flops += 4.0 * (ctx[s] - c.qLens[s] + j + 1) * D * Hq;
  }
  for (const void* d : {p.blockTables, p.queryStart, p.contextLens, p.tileSeq, p.tileQStart, p.tileSplitSlot})
    cudaFree(const_cast<void*>(d));
  for (void* d : {k, v, q, out, (void*)pOut, (void*)pMax, (void*)pSum}) cudaFree(d);
  return r;
}

void attnBench(double copyBw) {
  // Large decode batches also at the longer partitions the default mode picks for them (cuda_forward.cc).
  std::vector<AttnCase> cases = {
      {"decode b1 x 4096", {1}, {4096}},
      {"decode b64 x 4096", std::vector<int>(64, 1), std::vector<int>(64, 4096)},
      {"  partition 512", std::vector<int>(64, 1), std::vector<int>(64, 4096), 512},
      {"  partition 1024", std::vector<int>(64, 1), std::vector<int>(64, 4096), 1024},
      {"  unsplit", std::vector<int>(64, 1), std::vector<int>(64, 4096), 4096},
      {"decode b256 x 512", std::vector<int>(256, 1), std::vector<int>(256, 512)},
      {"  unsplit", std::vector<int>(256, 1), std::vector<int>(256, 512), 512},
      {"decode b256 x 1536", std::vector<int>(256, 1), std::vector<int>(256, 1536)},
      {"  partition 512", std::vector<int>(256, 1), std::vector<int>(256, 1536), 512},
      {"  unsplit", std::vector<int>(256, 1), std::vector<int>(256, 1536), 1536},
      {"prefill 1 x 2048", {2048}, {2048}},
      {"prefill 16 x 512", std::vector<int>(16, 512), std::vector<int>(16, 512)},
      {"prefill 1 x 8192", {8192}, {8192}},
  };
  std::printf("\nattention, bf16, Hq 32 Hkv 8 D 128, block 16, split-KV partition 128 unless noted\n");
  std::printf("%-20s %10s %10s %8s %10s\n", "case", "us", "KV TB/s", "%copy", "TFLOP/s");
  for (const AttnCase& c : cases) {
    const AttnTiming r = timeAttention(c, KVSK_BF16, KVSK_KV_SAME);
    std::printf("%-20s %10.1f %10.2f %7.0f%% %10.1f\n", c.name, r.ms * 1e3, r.kvBytes / (r.ms * 1e-3) / 1e12,
                100.0 * r.kvBytes / (r.ms * 1e-3) / copyBw, r.flops / (r.ms * 1e-3) / 1e12);
  }
}

// The fp8 (e4m3) cache beside the bf16 one: the same shapes, bytes of cache read per second against the copy
// ceiling (an fp8 decode reads half the bytes, so it keeps pace when its %copy matches bf16's), with bf16 and
// f16 queries (the latter skip the query conversion); prefill in TFLOP/s.
void attnFp8Bench(double copyBw) {
  const std::vector<AttnCase> cases = {
      {"decode b1 x 4096", {1}, {4096}},
      {"decode b64 x 4096", std::vector<int>(64, 1), std::vector<int>(64, 4096)},
      {"  partition 1024", std::vector<int>(64, 1), std::vector<int>(64, 4096), 1024},
      {"decode b256 x 512", std::vector<int>(256, 1), std::vector<int>(256, 512)},
      {"  unsplit", std::vector<int>(256, 1), std::vector<int>(256, 512), 512},
      {"prefill 1 x 2048", {2048}, {2048}},
      {"prefill 1 x 8192", {8192}, {8192}},
  };
  std::printf("\nattention over an fp8 (e4m3) cache beside bf16, Hq 32 Hkv 8 D 128, block 16, partition 128 unless noted\n");
  std::printf("%-20s %22s %22s %22s %8s\n", "", "bf16 cache", "fp8 cache, bf16 q", "fp8 cache, f16 q", "");
  std::printf("%-20s %9s %6s %5s %9s %6s %5s %9s %6s %5s %8s\n", "case", "us", "TB/s", "%copy", "us", "TB/s", "%copy",
              "us", "TB/s", "%copy", "speedup");
  for (const AttnCase& c : cases) {
    const AttnTiming runs[3] = {timeAttention(c, KVSK_BF16, KVSK_KV_SAME), timeAttention(c, KVSK_BF16, KVSK_KV_FP8_E4M3),
                                timeAttention(c, KVSK_F16, KVSK_KV_FP8_E4M3)};
    std::printf("%-20s", c.name);
    for (const AttnTiming& r : runs) {
      const bool prefill = c.qLens[0] > 1;
      const double rate = prefill ? r.flops / (r.ms * 1e-3) / 1e12 : r.kvBytes / (r.ms * 1e-3) / 1e12;
      if (prefill) std::printf(" %9.1f %6.1f %5s", r.ms * 1e3, rate, "-");
      else std::printf(" %9.1f %6.2f %4.0f%%", r.ms * 1e3, rate, 100.0 * r.kvBytes / (r.ms * 1e-3) / copyBw);
    }
    std::printf(" %7.2fx\n", runs[0].ms / runs[1].ms);
  }
  std::printf("(prefill rows: TFLOP/s instead of TB/s; speedup = bf16 cache time / fp8 cache time, bf16 queries)\n");
}

// Prefill attention version 2 (kernels/flash_prefill.cuh, KVSERVE_ATTN_PREFILL=v2) against version 1 on the same
// inputs: causal prefill, chunks after cached prefixes, and a chunk beside decodes (one mixed launch), over a bf16
// and an fp8 cache (bf16 queries); TFLOP/s of the useful causal flops, speedup = version 1's time / version 2's.
void attnPrefillBench() {
  const std::vector<AttnCase> cases = {
      {"prefill 1 x 512", {512}, {512}},
      {"prefill 1 x 2048", {2048}, {2048}},
      {"prefill 1 x 8192", {8192}, {8192}},
      {"prefill 4 x 2048", std::vector<int>(4, 2048), std::vector<int>(4, 2048)},
      {"chunk 512 @ 4096", {512}, {4096}},
      {"chunk 2048 @ 8192", {2048}, {8192}},
      {"2048 + 64 decodes", [] { std::vector<int> v(65, 1); v[0] = 2048; return v; }(), std::vector<int>(65, 2048)},
  };
  std::printf("\nprefill attention, version 1 against version 2, bf16 queries, Hq 32 Hkv 8 D 128, block 16, causal\n");
  std::printf("%-20s%29s%29s\n", "", "bf16 cache", "fp8 cache");
  std::printf("%-20s %8s %8s %5s %4s %8s %8s %5s %4s\n", "case", "v1", "v2", "TF/s", "x", "v1", "v2", "TF/s", "x");
  for (const AttnCase& c : cases) {
    std::printf("%-20s", c.name);
    for (kvsk_kv_dtype kv : {KVSK_KV_SAME, KVSK_KV_FP8_E4M3}) {
      const AttnTiming a = timeAttention(c, KVSK_BF16, kv, KVSK_ATTN_PREFILL_V1), b = timeAttention(c, KVSK_BF16, kv, KVSK_ATTN_PREFILL_V2);
      std::printf(" %8.1f %8.1f %5.0f %4.2f", a.ms * 1e3, b.ms * 1e3, b.flops / (b.ms * 1e-3) / 1e12, a.ms / b.ms);
    }
    std::printf("\n");
  }
  std::printf("(TF/s: version 2's; version 1's is that / x)\n");
}

// The split-KV partition the engine picks for a decode step of `batch` sequences of context ctx (cuda_backend.cc,
// cuda_forward.cc: the engine's smallest partition for a max-model-len of max(8192, ctx), doubled until the
// step's CTAs fit 24 per SM).
int enginePartition(int batch, int ctx, int Hkv, int numSms) {
  const int maxLen = std::max(8192, ctx);
  int p = std::max(128, (maxLen / 64 + 31) / 32 * 32);
  const int maxSplitLen = (maxLen + p - 1) / p * p;
  // One sequence: KVSERVE_ATTN_DECODE=auto's half partition where the context's partitions fit (stepPartition).
  if (batch == 1 && p / 2 >= 64 && (int64_t)ctx <= (int64_t)(p / 2) * (maxSplitLen / p)) return p / 2;
  while (p < maxSplitLen && (int64_t)batch * ((ctx + p - 1) / p) * Hkv > 24LL * numSms) p *= 2;
  return p;
}

// Decode attention, the two-launch kernel (v1: partitions, then the merge kernel) against the single-launch one
// (v2, KVSERVE_ATTN_DECODE=v2), Llama-3-8B's attention (32 / 8 heads of 128, 16-token blocks, bf16 queries) at
// batch 1, 8, 64 x context 512, 4096, 16384 and batch 256 x 512, 1536, over a bf16 and an fp8 cache, at the
// engine's partition (batch 1: auto's half partition, and 2x and 4x that). Timed two
// ways, K+V bytes / time against the copy ceiling: "single", one launch (v1: two) between events, as the attn
// table does; "chain", the per-layer time of a CUDA graph of one launch (v1: two) per layer over `layers`
// layers' caches (enough that together they are 3x L2, so every layer streams from DRAM; at most 128), with
// programmatic dependent launch on sm_90+, as the engine's graphed decode step runs them. Then v2's chain with
// its ring forced to 2, 3 and 4 stages (the default picks by the device's shared memory).
void attnDecodeBench(double copyBw, int numSms, int l2Bytes, bool pdl) {
  const int Hq = 32, Hkv = 8, D = 128, bs = 16;
  kvsk_set_programmatic_launch(pdl ? 1 : 0);
  std::printf("\ndecode attention, v1 (two launches) against v2 (one), Hq 32 Hkv 8 D 128, block 16, bf16 queries, the engine's "
              "partition; %% of copy %.2f TB/s; chain = per layer in a CUDA graph over layers %s\n", copyBw / 1e12,
              pdl ? "with PDL" : "(plain launches)");
  std::printf("%-6s %-11s %4s %5s %6s %6s | %8s %5s %8s %5s | %8s %5s %8s %5s %7s | %5s %5s %5s\n", "cache", "case", "part",
              "CTAs", "layers", "MB", "v1 1 us", "%copy", "v2 1 us", "%copy", "v1 ch us", "%copy", "v2 ch us", "%copy", "v2/v1",
              "s2", "s3", "s4");
  for (const kvsk_kv_dtype kv : {KVSK_KV_SAME, KVSK_KV_FP8_E4M3})
    for (const int batch : {1, 8, 64, 256})
      for (const int ctx : {512, 1536, 4096, 16384}) {
        if (batch == 256 ? ctx > 1536 : ctx == 1536) continue;  // batch 256: the throughput benchmarks' contexts
        const bool fp8 = kv == KVSK_KV_FP8_E4M3;
        const int enginePart = enginePartition(batch, ctx, Hkv, numSms);
        // Batch 1 also at 2x and 4x the engine's partition (fewer, longer CTAs: what stepPartition could pick).
        for (const int partition : batch == 1 ? std::vector<int>{enginePart, 2 * enginePart, 4 * enginePart}
                                              : std::vector<int>{enginePart}) {
          const int blocksPerSeq = (ctx + bs - 1) / bs, totalBlocks = batch * blocksPerSeq;
          const size_t planeElems = (size_t)totalBlocks * bs * Hkv * D, elemBytes = fp8 ? 1 : 2;
          const double layerBytes = 2.0 * planeElems * elemBytes;
          const int layers = (int)std::min<double>(128, std::max<double>(2, std::ceil(3.0 * l2Bytes / layerBytes)));
          std::vector<int32_t> qs(batch + 1), ctxs(batch, ctx), table((size_t)batch * blocksPerSeq);
          for (int s = 0; s <= batch; ++s) qs[s] = s;
          std::iota(table.begin(), table.end(), 0);
          std::shuffle(table.begin(), table.end(), std::mt19937(1));
          std::vector<int32_t> tileSeq(batch), tileQ(batch), tileSlot(batch);
          kvsk_attention_plan_info info{};
          if (kvsk_attention_plan(qs.data(), ctxs.data(), batch, Hq, Hkv, D, KVSK_BF16, partition, KVSK_ATTN_PREFILL_V1,
                                  tileSeq.data(), tileQ.data(), tileSlot.data(), batch, &info) != 0)
            std::exit(2);
          auto up = [](const std::vector<int32_t>& v) {
            int32_t* d = nullptr;
            CK(cudaMalloc(&d, v.size() * 4));
            CK(cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
            return d;
          };
          // Every layer's K and V planes in one pool: layer l's K at 2 l planes, its V right after.
          const size_t pool = 2 * (size_t)layers * planeElems;
          char* cache = static_cast<char*>(fp8 ? devE4m3(pool, 1) : devRandom(pool, KVSK_BF16, 1));
          void* q = devRandom((size_t)batch * Hq * D, KVSK_BF16, 3);
          void* out = devRandom((size_t)batch * Hq * D, KVSK_BF16, 4);
          const size_t parts = (size_t)std::max(1, info.numSplitSlots) * Hq * info.maxSplits;
          float *pOut, *pMax, *pSum;
          unsigned* counters;
          CK(cudaMalloc(&pOut, parts * D * 4));
          CK(cudaMalloc(&pMax, parts * 4));
          CK(cudaMalloc(&pSum, parts * 4));
          CK(cudaMalloc(&counters, (size_t)std::max(1, info.numSplitSlots) * Hkv * sizeof(unsigned)));
          CK(cudaMemset(counters, 0, (size_t)std::max(1, info.numSplitSlots) * Hkv * sizeof(unsigned)));
          kvsk_attention_params p{};
          p.q = q; p.out = out;
          p.blockTables = up(table); p.queryStart = up(qs); p.contextLens = up(ctxs);
          p.tileSeq = up(tileSeq); p.tileQStart = up(tileQ); p.tileSplitSlot = up(tileSlot);
          p.partialOut = pOut; p.partialMax = pMax; p.partialSum = pSum;
          p.numTiles = info.numTiles; p.tokensPerTile = info.tokensPerTile; p.numSplitSlots = info.numSplitSlots;
          p.maxSplits = info.maxSplits; p.partitionSize = partition;
          p.numHeads = Hq; p.numKvHeads = Hkv; p.headDim = D; p.blockSize = bs; p.maxBlocksPerSeq = blocksPerSeq;
          p.scale = 1.f / std::sqrt((float)D); p.dtype = KVSK_BF16;
          p.cacheDtype = kv; p.kScale = 0.05f; p.vScale = 0.05f;
          p.splitCounters = counters;
          auto atLayer = [&](int l, int version, int stages) {
            kvsk_attention_params a = p;
            a.kCache = cache + (2 * (size_t)l) * planeElems * elemBytes;
            a.vCache = cache + (2 * (size_t)l + 1) * planeElems * elemBytes;
            a.decodeVersion = version;
            a.decodeStages = stages;
            return a;
          };
          auto single = [&](int version) {
            return timeMs([&](int i) {
              const kvsk_attention_params a = atLayer(i % layers, version, 0);
              CK(kvsk_attention(&a, 1, stream));
            });
          };
          // Per-layer ms of a graph of every layer's launch(es).
          auto chain = [&](int version, int stages) {
            cudaGraph_t g = nullptr;
            cudaGraphExec_t exec = nullptr;
            CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
            for (int l = 0; l < layers; ++l) {
              const kvsk_attention_params a = atLayer(l, version, stages);
              CK(kvsk_attention(&a, 1, stream));
            }
            CK(cudaStreamEndCapture(stream, &g));
            CK(cudaGraphInstantiate(&exec, g, 0));
            const double ms = timeMs([&](int) { CK(cudaGraphLaunch(exec, stream)); }) / layers;
            CK(cudaGraphExecDestroy(exec));
            CK(cudaGraphDestroy(g));
            return ms;
          };
          const double kvBytes = layerBytes, bwUs = kvBytes / copyBw * 1e6;
          const double s1 = single(1) * 1e3, s2 = single(2) * 1e3, c1 = chain(1, 0) * 1e3, c2 = chain(2, 0) * 1e3;
          char name[32];
          std::snprintf(name, sizeof name, "b%d x %d", batch, ctx);
          std::printf("%-6s %-11s %4d %5d %6d %6.1f | %8.1f %4.0f%% %8.1f %4.0f%% | %8.1f %4.0f%% %8.1f %4.0f%% %6.2fx |", fp8 ? "fp8" : "bf16",
                      name, partition, info.numSplitSlots > 0 ? batch * Hkv * info.maxSplits : batch * Hkv, layers, kvBytes / 1e6,
                      s1, 100 * bwUs / s1, s2, 100 * bwUs / s2, c1, 100 * bwUs / c1, c2, 100 * bwUs / c2, c1 / c2);
          for (int stages : {2, 3, 4}) std::printf(" %4.0f%%", 100 * bwUs / (chain(2, stages) * 1e3));
          std::printf("\n");
          for (const void* d : {p.blockTables, p.queryStart, p.contextLens, p.tileSeq, p.tileQStart, p.tileSplitSlot})
            cudaFree(const_cast<void*>(d));
          for (void* d : {(void*)cache, q, out, (void*)pOut, (void*)pMax, (void*)pSum, (void*)counters}) cudaFree(d);
        }
      }
  std::printf("(%%copy: the K+V bytes of one layer at copy bandwidth against the time; s2-s4: v2's chain with that many "
              "ring stages)\n");
  kvsk_set_programmatic_launch(0);
}

// The fused epilogues' inputs and outputs beside the GEMV at Llama-3-8B's shapes (32 / 8 heads of 128, llama3
// inv_freq stand-in, slots in 16-token blocks), up to M = 8.
struct FuseTargets {
  static constexpr int Hq = 32, Hkv = 8, D = 128, I = 14336;
  float* invFreq = nullptr;
  int32_t* pos = nullptr;  // [8] positions, then [8] slots
  void *q = nullptr, *kc = nullptr, *vc = nullptr, *act = nullptr;
  FuseTargets() {
    std::vector<float> inv(D / 2);
    for (int i = 0; i < D / 2; ++i) inv[i] = std::pow(500000.f, -2.f * i / D);
    CK(cudaMalloc(&invFreq, inv.size() * 4));
    CK(cudaMemcpy(invFreq, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice));
    const std::vector<int32_t> p = {517, 518, 519, 520, 521, 522, 523, 524, 3, 19, 35, 51, 67, 83, 99, 115};
    CK(cudaMalloc(&pos, p.size() * 4));
    CK(cudaMemcpy(pos, p.data(), p.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&q, 8 * Hq * D * 2));
    CK(cudaMalloc(&kc, 128 * Hkv * D * 2));
    CK(cudaMalloc(&vc, 128 * Hkv * D * 2));
    CK(cudaMalloc(&act, 8 * I * 2));
  }
  ~FuseTargets() {
    for (void* p : {(void*)invFreq, (void*)pos, q, kc, vc, act}) cudaFree(p);
  }
  FuseTargets(const FuseTargets&) = delete;
  kvsk_rope_cache_params rope(const void* qkv, int M) const {
    return {qkv, q, kc, vc, pos, pos + 8, invFreq, nullptr, nullptr, nullptr, 1e-5f, M, Hq, Hkv, D, KVSK_BF16};
  }
  kvsk_silu_mul_params silu(const void* gateUp, int M) const { return {gateUp, act, M, I, KVSK_BF16}; }
};

// Per pair (or fused kernel) us in chains of 16 with programmatic dependent launch, as the forward pass runs
// them at Llama-3-8B's shapes.
void gemvFuseBench(double copyBw) {
  const FuseTargets f;
  kvsk_set_programmatic_launch(1);
  std::printf("\nGEMV epilogue fusion, bf16, chains of 16 with PDL (per-step us, %% of copy bandwidth %.2f TB/s)\n", copyBw / 1e12);
  std::printf("%-8s %3s %5s %20s %20s\n", "weight", "M", "rows", "GEMV + kernel", "fused");
  for (const GemvShape& s : {kGemvShapes[0], kGemvShapes[2]}) {
    const bool qkv = s.N == kGemvShapes[0].N;
    const double wBytes = (double)s.N * s.K * 2;
    const GemvBuffers buf(s, 17, 500, 8);
    for (int M : {1, 4, 8})
      for (int rows : {4, 2}) {
        double us[2];
        for (int fused = 0; fused < 2; ++fused)
          us[fused] = 1e3 / 16 * timeMs([&](int i) {
            for (int j = 0; j < 16; ++j) {
              kvsk_gemv_params g{buf.x, buf.w(i * 16 + j), buf.y, M, s.N, s.K, KVSK_BF16, rows};
              if (qkv) {
                const kvsk_rope_cache_params r = f.rope(buf.y, M);
                if (fused) CK(kvsk_gemv_rope_cache(&g, &r, stream));
                else { CK(kvsk_gemv(&g, stream)); CK(kvsk_rope_cache(&r, stream)); }
              } else {
                const kvsk_silu_mul_params sm = f.silu(buf.y, M);
                if (fused) CK(kvsk_gemv_silu_mul(&g, &sm, stream));
                else { CK(kvsk_gemv(&g, stream)); CK(kvsk_silu_mul(&sm, stream)); }
              }
            }
          });
        std::printf("%-8s %3d %5d %12.1f (%3.0f%%) %12.1f (%3.0f%%)\n", s.name, M, rows, us[0],
                    100.0 * wBytes / (us[0] * 1e-6) / copyBw, us[1], 100.0 * wBytes / (us[1] * 1e-6) / copyBw);
      }
  }
  kvsk_set_programmatic_launch(0);
}

// As gemvFuseBench, on FP8 weights: kvsk_gemv_fp8 (version 2) then the separate kernel against the fused kernel
// (kernels/gemv_fp8_fused.cu), at each of v2's CTA shapes (the FP8 plan times them per M bucket; the fused kernel
// runs the one the plan chose). % of copy bandwidth: of the weight's bytes.
void gemvFuseFp8Bench(double copyBw) {
  const FuseTargets f;
  kvsk_set_programmatic_launch(1);
  std::printf("\nGEMV epilogue fusion, FP8 weights (GEMV v2), bf16 x, chains of 16 with PDL (per-step us, %% of copy "
              "bandwidth %.2f TB/s)\n", copyBw / 1e12);
  std::printf("%-8s %3s %5s %20s %20s %8s\n", "weight", "M", "rows", "v2 GEMV + kernel", "fused", "speedup");
  for (const GemvShape& s : {kGemvShapes[0], kGemvShapes[2]}) {
    const bool qkv = s.N == kGemvShapes[0].N;
    const double wBytes = (double)s.N * s.K;
    const Fp8Buffers f8(s, 17, 8);
    for (int M : {1, 4, 8})
      for (int rows : {16, 32, 64}) {
        double us[2];
        for (int fused = 0; fused < 2; ++fused)
          us[fused] = 1e3 / 16 * timeMs([&](int i) {
            for (int j = 0; j < 16; ++j) {
              const int w = i * 16 + j;
              kvsk_gemv_fp8_params g{f8.x, f8.w(w), f8.scale(w), f8.y, M, s.N, s.K, KVSK_BF16, rows, 2};
              if (qkv) {
                const kvsk_rope_cache_params r = f.rope(f8.y, M);
                if (fused) CK(kvsk_gemv_fp8_rope_cache(&g, &r, stream));
                else { CK(kvsk_gemv_fp8(&g, stream)); CK(kvsk_rope_cache(&r, stream)); }
              } else {
                const kvsk_silu_mul_params sm = f.silu(f8.y, M);
                if (fused) CK(kvsk_gemv_fp8_silu_mul(&g, &sm, stream));
                else { CK(kvsk_gemv_fp8(&g, stream)); CK(kvsk_silu_mul(&sm, stream)); }
              }
            }
          });
        std::printf("%-8s %3d %5d %12.1f (%3.0f%%) %12.1f (%3.0f%%) %7.2fx\n", s.name, M, rows, us[0],
                    100.0 * wBytes / (us[0] * 1e-6) / copyBw, us[1], 100.0 * wBytes / (us[1] * 1e-6) / copyBw, us[0] / us[1]);
      }
  }
  kvsk_set_programmatic_launch(0);
}

// kvsk_rope_cache at Llama-3-8B's shape (32 / 8 heads of 128, bf16, a bf16 cache of 16-token blocks) for T tokens:
// the vector kernel against the scalar one (kvsk_rope_cache_params.vector), each alone; % of copy bandwidth of
// the bytes it moves (qkv read, q and k/v written).
void ropeBench(double copyBw) {
  constexpr int Hq = 32, Hkv = 8, D = 128, W = (Hq + 2 * Hkv) * D, maxT = 8192;
  std::printf("\nrope + cache write, Llama-3-8B shape, bf16 (us a launch, %% of copy bandwidth %.2f TB/s)\n", copyBw / 1e12);
  std::printf("%6s %16s %16s\n", "tokens", "scalar", "vector");
  std::vector<float> inv(D / 2);
  for (int i = 0; i < D / 2; ++i) inv[i] = std::pow(500000.f, -2.f * i / D);
  std::vector<int32_t> pos(maxT), slot(maxT);
  for (int t = 0; t < maxT; ++t) pos[t] = slot[t] = t;
  float* dInv = nullptr;
  int32_t *dPos = nullptr, *dSlot = nullptr;
  CK(cudaMalloc(&dInv, inv.size() * 4));
  CK(cudaMalloc(&dPos, maxT * 4));
  CK(cudaMalloc(&dSlot, maxT * 4));
  CK(cudaMemcpy(dInv, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dPos, pos.data(), maxT * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dSlot, slot.data(), maxT * 4, cudaMemcpyHostToDevice));
  void* qkv = devRandom((size_t)maxT * W, KVSK_BF16, 91);
  void *q = nullptr, *kc = nullptr, *vc = nullptr;
  CK(cudaMalloc(&q, (size_t)maxT * Hq * D * 2));
  CK(cudaMalloc(&kc, (size_t)maxT * Hkv * D * 2));
  CK(cudaMalloc(&vc, (size_t)maxT * Hkv * D * 2));
  for (int T : {1, 8, 64, 129, 512, 2048, 8192}) {
    const double bytes = (double)T * (W + Hq * D + 2 * Hkv * D) * 2;
    double us[2];
    for (int vec = 0; vec < 2; ++vec) {
      const kvsk_rope_cache_params r{qkv, q, kc, vc, dPos, dSlot, dInv, nullptr, nullptr, nullptr, 1e-5f,
                                     T, Hq, Hkv, D, KVSK_BF16, KVSK_KV_SAME, 1.f, 1.f, vec};
      us[vec] = 1e3 * timeMs([&](int) { CK(kvsk_rope_cache(&r, stream)); });
    }
    std::printf("%6d %9.1f (%3.0f%%) %9.1f (%3.0f%%)\n", T, us[0], 100.0 * bytes / (us[0] * 1e-6) / copyBw, us[1],
                100.0 * bytes / (us[1] * 1e-6) / copyBw);
  }
  for (void* p : {(void*)dInv, (void*)dPos, (void*)dSlot, (void*)qkv, q, kc, vc}) cudaFree(p);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> only(argv + 1, argv + argc);
  auto want = [&](const char* s) { return only.empty() || std::find(only.begin(), only.end(), s) != only.end(); };
  CK(cudaStreamCreate(&stream));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs, L2 %d MB)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
              prop.l2CacheSize >> 20);
  const double bw = copyBandwidth();
  std::printf("copy bandwidth (read + write): %.2f TB/s\n", bw / 1e12);
  if (want("gemv")) gemvBench(bw);
  if (want("chain") && prop.major >= 9) gemvChainBench(bw);
  if (want("gemv-even")) gemvEvenBench(bw, prop.multiProcessorCount, prop.major >= 9);
  if (want("attn")) attnBench(bw);
  if (want("fp8")) fp8GemvBench(bw);
  if (want("fp8gemm")) fp8GemmBench();
  if (want("attn-fp8")) attnFp8Bench(bw);
  if (want("attn-prefill")) attnPrefillBench();
  if (want("attn-decode")) attnDecodeBench(bw, prop.multiProcessorCount, prop.l2CacheSize, prop.major >= 9);
  if (want("fp8fuse")) fp8FuseBench(bw, prop.major >= 9);
  if (want("fuse") && prop.major >= 9) gemvFuseBench(bw);
  if (want("fuse-fp8") && prop.major >= 9) gemvFuseFp8Bench(bw);
  if (want("int8")) int8GemvBench(bw);
  if (want("int8gemm")) int8GemmBench();
  if (want("inv")) invBench(bw, prop.major >= 9);
  if (want("wgmma")) wgmmaBench(bw);
  if (want("gemv-inv")) gemvInvBench(bw);
  if (want("rope")) ropeBench(bw);
  CK(cudaStreamDestroy(stream));
  return 0;
}
