// GEMMs of the CUDA backend: Y[M, N] = X[M, K] * W[N, K]^T, row-major, fp32 accumulation. bf16/f16 operands
// use CUBLAS_COMPUTE_32F; float32 uses CUBLAS_COMPUTE_32F too (never TF32), so a float32 checkpoint computes
// in true float32.
//
// Two modes:
// - Fast (the default): one kernel per (weight shape, M bucket) — buckets end at 1, 2, 4, .., 64, every 16
//   up to 256, every 64 up to 1024, then quarter steps between powers of two, and maxM —
//   chosen at load by timing, at the bucket's M on the real weights, the heuristic's top cuBLASLt candidates
//   (split-K allowed) and, for M <= KVSK_GEMV_MAX_M (bf16/f16), our memory-bound kernel (kernels/gemv.cu)
//   that reads each weight once. A row's result then depends on how many rows share the call.
//   One more GEMV candidate (unless KVSERVE_GEMV_EVEN=0, read when the runner is made): kernels/gemv_even.cu,
//   the weight cut evenly over one wave of CTAs (its grid from N, K and the device alone, so a row's bits still
//   do not depend on M). Its plans record it as its own kind (GemmChoice::gemvEven, "gemv_even" in a manifest);
//   a runner with the switch off refuses such a record in one line (the caller times the shape again). It needs a workspace (per-CTA
//   counters and float32 parts) that grows as shapes are planned: plan every shape before capturing CUDA graphs.
// - BatchInvariant (--batch-invariant): ONE algorithm per (N, K, dtype) — the heuristic's best at
//   M = probeM with split-K forced off, also valid at M = 1 and M = maxM — for every M. A row of Y depends on
//   its row of X only, never on the other rows of the call (checked bitwise by the kernel tests).
//   With InvariantGemm::Own (the engine option invariantGemm: "own"; KVSERVE_INVARIANT_GEMM=own) the bf16/f16 shapes with K % 8 == 0 run our own GEMM instead (kernels/gemm_inv.cu): one fixed k-reduction per
//   weight shape (its k-partitions from N, K and the SM count), tiles and split chosen by M for speed without
//   changing a bit, so small M runs memory bound rather than on the large-M algorithm. Other shapes and
//   float32 keep the cuBLASLt algorithm. Its workspace (per-tile counters, float32 partition sums) grows as
//   shapes are planned: plan every shape before capturing CUDA graphs.
//   InvariantGemm::Wgmma (invariantGemm: "wgmma", KVSERVE_INVARIANT_GEMM=wgmma; verified in GPU run 12) is the
//   same contract on Hopper's warpgroup MMA (kernels/gemm_wgmma.cu: wgmma for every M, TMA loads,
//   its own k-partitions and bits): the same shapes, the same workspace rules. A runner asked for it in
//   batch-invariant mode where the device cannot run it (not compute capability 9.0, or a build without sm_90a
//   code) refuses in one line at construction.
//
// FP8 linear layers (fast mode only, gemm_fp8.cc): Y[M, N] = X[M, K] (W8 * wScale)^T, W8 [N, K] e4m3 with a
// float32 scale per row (kvserve_kernels.h, kvsk_quantize_weight_fp8). Per M bucket, timed like the above:
// kernels/gemv_fp8.cu on X as it is (M <= KVSK_GEMV_FP8_MAX_M), or X quantized per row (kvsk_quantize_rows_fp8,
// into scratch the runner owns) and cuBLASLt's FP8 matmul: A = W8 (CUDA_R_8F_E4M3, transposed: the "TN" layout
// FP8 requires), B = xq, D in bf16/f16, CUBLAS_COMPUTE_32F without fast accumulation, and the scales as
// outer vectors (CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F: A's per row of W8 = wScale, B's per token =
// xScale; cuBLAS 12.9+ on sm_90), so y = xScale[m] wScale[n] sum_k xq[m, k] W8[n, k] comes out of the
// matmul's own epilogue. A producer that quantizes its own output (the forward pass's RMSNorm and SiLU·mul)
// hands xq and xScale to the runFp8 overload instead, which skips the quantize pass.
//
// INT8 linear layers (W8A8 with SmoothQuant, gemm_int8.cc): Y[M, N] = dequant(xq (W8)^T), W8 [N, K] int8 with a
// float32 scale per row and, for layers whose smoothing could not be folded into a norm, a float32
// multiplier of the input (kvserve_kernels.h, the INT8 block). X is quantized per row (kvsk_quantize_rows_int8,
// into scratch the runner owns); per M bucket, timed like the above, kernels/gemv_int8.cu (M <=
// KVSK_GEMV_INT8_MAX_M) or cuBLASLt's IMMA matmul: A = W8 (CUDA_R_8I, transposed: "TN", as IMMA requires),
// B = xq, D int32, CUBLAS_COMPUTE_32I with int32 alpha/beta, then kvsk_dequant_int8. cuBLASLt offers no float
// epilogue for an int32-compute matmul into bf16/f16 (its outer-vector scale modes are for FP8), hence the
// separate dequantization. The int32 sums are exact, so every kernel of every bucket gives the same bits:
// int8 plans are per M bucket in both modes, and still batch invariant.
// matmul's own epilogue. The FP8 GEMV the runner times and runs is version 2 (kernels/gemv_fp8_v2.cu: f16
// operands, x in shared memory, persistent CTAs; 17% faster batch-1 steps on the H200), or version 1
// (kernels/gemv_fp8.cu) with KVSERVE_GEMV_FP8=v1, read when the runner is made, for A/B measurements. Plans do
// not record the version: an imported plan runs the version selected.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "../model_config.h"
#include "device_buffer.h"

namespace kvs::cuda {

enum class GemmMode { Fast, BatchInvariant };
// Which kernel serves the batch-invariant mode's bf16/f16 shapes: cuBLASLt's one algorithm, ours on mma.sync
// (kernels/gemm_inv.cu), ours on wgmma (kernels/gemm_wgmma.cu, Hopper only), or Hybrid: gemm_inv's memory-bound
// 16 x 64 tile for M <= kHybridInvMaxM and wgmma above, both on wgmma's k-partitions (Hopper only). Hybrid keeps
// the batch-invariant contract only because the two instructions give the same bits for the same reduction
// (mma.sync m16n8k16 and wgmma m64n128k16, each an element from its row, column and accumulator alone): the
// gemm-wgmma kernel suite checks exactly that on every shape (all equal on the H200, GPU run 13), and the engine's
// invariantGemm "auto" (the default) picks Hybrid wherever wgmma runs. Where gemm_inv would run at M <= 8 (Own, and
// Hybrid's small M; KVSERVE_GEMV_INV_MAX_M 1 to 16, KVSERVE_GEMV_INV=0 never), kernels/gemv_inv.cu may run instead
// (timed per weight at load): gemm_inv's reduction with W streamed from global memory into registers, bitwise
// gemm_inv's rows.
enum class InvariantGemm { CublasLt, Own, Wgmma, Hybrid };
constexpr int kHybridInvMaxM = 16;
// The engine option's name of each ("cublaslt", "own", "wgmma", "hybrid"), and the kernels ours run.
const char* invariantGemmName(InvariantGemm g);
const char* invariantGemmKernels(InvariantGemm g);

// One M range of a fast-mode plan in a form that outlives the process (an engine's manifest.json): the GEMV
// kernel with its rows of W per CTA, or a cuBLASLt algorithm as the opaque bytes of its cublasLtMatmulAlgo_t.
struct GemmChoice {
  int mMin = 1, mMax = 1;          // M in [mMin, mMax]
  bool gemv = false;
  int gemvRows = 0;                // gemv: rows of W per CTA (1, 2 or 4; FP8 and int8 plans: 16, 32 or 64)
  bool gemvEven = false;           // gemv: the even GEMV (kernels/gemv_even.cu) instead; gemvRows unused
  std::array<uint64_t, 8> algo{};  // cuBLASLt: cublasLtMatmulAlgo_t::data
  size_t workspace = 0;            // cuBLASLt: the workspace it needs at M = mMax
  int algoId = 0, tile = 0, stages = 0, splitK = 0;  // cuBLASLt, for people: read from algo on export, ignored on import
};

// KVSERVE_GEMV_FP8: 2 when unset or v2, 1 for v1; throws on anything else (gemm_fp8.cc).
int fp8GemvVersionFromEnv();
// KVSERVE_GEMV_EVEN: true when unset, empty or 1, false for 0; throws on anything else (gemm_even.cc).
bool gemvEvenFromEnv();

class GemmRunner {
 public:
  // maxM: the largest M any call will pass; probeM (batch-invariant mode): the M the heuristic is asked
  // about (0 = maxM); invariantGemm: which kernel the batch-invariant mode runs where it can (fast mode: unused).
  // Throws when KVSERVE_GEMV_FP8 is neither unset, v1 nor v2, or KVSERVE_GEMV_EVEN neither unset, 0 nor 1, and in
  // batch-invariant mode with InvariantGemm::Wgmma or Hybrid where the device cannot run wgmma (one line: why).
  GemmRunner(cudaStream_t stream, int maxM, GemmMode mode, int probeM = 0, size_t workspaceBytes = 32u << 20,
             InvariantGemm invariantGemm = InvariantGemm::CublasLt);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // Plans (N, K, in -> out) for calls of M <= maxM (0 = the runner's maxM). In fast mode W (the real
  // weight, [N, K]) is what the candidates are timed on; may be null (then the heuristic's first pick).
  // Throws when cuBLASLt has no algorithm. run() plans lazily (untimed) otherwise.
  void plan(int N, int K, DType in, DType out, const void* W = nullptr, int maxM = 0);
  // X: [M, K] in, W: [N, K] in, Y: [M, N] out. M in [1, maxM]. gemvInv (fast mode; on unless KVSERVE_FAST_GEMV_INV=0):
  // where the plan runs the GEMV on a weight of several k-partitions, gemv_inv runs instead. Asked only for weights
  // no epilogue fusion serves (o_proj, down_proj), so a fused and an unfused load of a model give the same bits.
  void run(const void* X, const void* W, void* Y, int M, int N, int K, DType in, DType out, bool gemvInv = false);
  // Plain description of the algorithm(s) chosen for the shape (benchmarks, logs).
  std::string describe(int N, int K, DType in, DType out);
  // Rows of W per CTA (1, 2 or 4) when run() at this M launches the GEMV kernel (kernels/gemv.cu), else 0
  // (cuBLASLt, the even GEMV, or M outside [1, maxM]): the forward pass fuses its epilogues only into the
  // rows-per-CTA GEMV (gemv_fused.cu gives a CTA whole rows, paired), so a bucket on the even GEMV runs unfused.
  int gemvRows(int M, int N, int K, DType in, DType out);

  // The plan of (N, K, in, out) as choices, ascending in M (planned untimed first when it is not yet).
  std::vector<GemmChoice> exportPlan(int N, int K, DType in, DType out);
  // Makes `choices` the plan of (N, K, in, out) for M <= maxM (0 = the runner's maxM) without timing. Fast
  // mode only, for a shape not planned yet. The ranges must start at 1 and follow each other without a gap
  // up to maxM or beyond (ranges above maxM are dropped, the last one kept ends at maxM); every cuBLASLt
  // algorithm must pass cublasLtMatmulAlgoCheck at both ends of its range within the workspace, every GEMV
  // range must be one kvsk_gemv supports, and an even-GEMV range (gemvEven) needs KVSERVE_GEMV_EVEN unset or 1 here.
  // Returns "" once installed; else why not, with nothing installed (the caller then plans the shape by timing).
  std::string importPlan(int N, int K, DType in, DType out, const std::vector<GemmChoice>& choices, int maxM = 0);
  GemmMode mode() const { return mode_; }
  InvariantGemm invariantGemm() const { return invariant_; }
  bool gemvEven() const { return gemvEven_; }  // the even GEMV is a candidate, its records imported (not KVSERVE_GEMV_EVEN=0)
  // CTAs of the even GEMV for the shape (kvsk_gemv_even_ctas on this device): the grid its bits depend on.
  int gemvEvenCtas(int N, int K) const;
  // k-partitions of our batch-invariant GEMM for the shape (kvsk_gemm_inv_splits, or kvsk_gemm_wgmma_splits with
  // InvariantGemm::Wgmma) when run() serves it with that kernel, else 0 (planned untimed first when it is not yet).
  int ownSplits(int N, int K, DType in, DType out);

  // FP8 (see the top of this file). W8: [N, K] e4m3 bytes, wScale: [N] float32, X: [M, K] io, Y: [M, N] io;
  // io bf16 or f16; K % 16 == 0; all pointers 16-byte aligned. Fast mode only: in --batch-invariant mode
  // every FP8 call throws. planFp8 times on W8 and wScale (the real weight, as plan() does; both null:
  // untimed) and sizes the runner's activation scratch (maxM x K bytes + maxM scales): plan or import every
  // FP8 shape before capturing CUDA graphs, since a later, larger plan moves the scratch. runFp8 plans an
  // unplanned shape lazily (untimed). Throws when cuBLASLt has no FP8 algorithm for an M the GEMV cannot serve.
  void planFp8(int N, int K, DType io, const void* W8 = nullptr, const float* wScale = nullptr, int maxM = 0);
  void runFp8(const void* X, const void* W8, const float* wScale, void* Y, int M, int N, int K, DType io);
  // As runFp8, on X already quantized per row by its producer (Xq [M, K] e4m3 and xScale [M], as
  // kvsk_quantize_rows_fp8 writes them; kvsk_rmsnorm / kvsk_silu_mul with outQ): no quantize pass. Only for an M
  // whose bucket runs cuBLASLt (fp8UsesGemv(N, K, io, M) false; throws otherwise). Xq and xScale 16-byte aligned.
  void runFp8(const void* Xq, const float* xScale, const void* W8, const float* wScale, void* Y, int M, int N, int K, DType io);
  std::string describeFp8(int N, int K, DType io);
  bool fp8UsesGemv(int N, int K, DType io, int M);  // whether runFp8 at this M runs kernels/gemv_fp8.cu
  // Rows of W8 per CTA (16, 32 or 64) when runFp8 at this M launches the FP8 GEMV's version 2 (this runner's
  // version, KVSERVE_GEMV_FP8=v2), else 0 (version 1, cuBLASLt, or M outside [1, maxM]): the forward pass fuses
  // epilogues into version 2 only (kernels/gemv_fp8_fused.cu).
  int fp8GemvV2Rows(int M, int N, int K, DType io);
  int fp8GemvVersion() const { return fp8GemvVersion_; }  // the FP8 GEMV's version this runner uses: 1 or 2
  int gemvTrigger() const { return gemvTrigger_; }        // kvsk_gemv_params.trigger of this runner's GEMVs
  int fp8GemvTrigger() const { return fp8GemvTrigger_; }  // kvsk_gemv_fp8_params.trigger of its FP8 GEMVs
  // As exportPlan / importPlan, for the FP8 plan of (N, K, io); GEMV choices carry gemvRows 16, 32 or 64.
  std::vector<GemmChoice> exportPlanFp8(int N, int K, DType io);
  std::string importPlanFp8(int N, int K, DType io, const std::vector<GemmChoice>& choices, int maxM = 0);

  // INT8 (see the top of this file). W8: [N, K] int8, wScale: [N] float32, actSmooth: [K] float32 or null, X: [M,
  // K] io, Y: [M, N] io; io bf16 or f16; K % 16 == 0, N % 4 == 0; all pointers 16-byte aligned. planInt8 times on
  // W8 and wScale (both null: untimed) and sizes the runner's scratch (maxM x K bytes, maxM scales, and maxM x N
  // int32 for the cuBLASLt product): plan or import every int8 shape before capturing CUDA graphs. runInt8
  // plans an unplanned shape lazily (untimed). Throws when cuBLASLt has no int8 algorithm for an M the GEMV
  // cannot serve.
  void planInt8(int N, int K, DType io, const void* W8 = nullptr, const float* wScale = nullptr, int maxM = 0);
  void runInt8(const void* X, const float* actSmooth, const void* W8, const float* wScale, void* Y, int M, int N, int K,
               DType io);
  std::string describeInt8(int N, int K, DType io);
  bool int8UsesGemv(int N, int K, DType io, int M);  // whether runInt8 at this M runs kernels/gemv_int8.cu
  // As exportPlan / importPlan, for the int8 plan of (N, K, io); GEMV choices carry gemvRows 16, 32 or 64.
  std::vector<GemmChoice> exportPlanInt8(int N, int K, DType io);
  std::string importPlanInt8(int N, int K, DType io, const std::vector<GemmChoice>& choices, int maxM = 0);

 private:
  struct Bucket {
    int maxM = 0;  // this algorithm serves M in (previous bucket's maxM, maxM]
    bool gemv = false;  // kernels/gemv.cu instead of cuBLASLt
    cublasLtMatmulAlgo_t algo{};
    size_t workspace = 0;
    int gemvRows = 4;  // gemv: rows of W per CTA (kvsk_gemv_params / kvsk_gemv_fp8_params / kvsk_gemv_int8_params .rowsPerCta)
    bool gemvEven = false;  // gemv: kernels/gemv_even.cu (bf16/f16 plans only) instead of gemvRows rows per CTA
    int ownSplits = 0;  // > 0: our batch-invariant GEMM (gemm_inv.cu; gemm_wgmma.cu with Wgmma), these k-partitions
    int gemvInvTiles = 0;  // ownSplits > 0: where gemm_inv would run M <= 16, gemv_inv.cu with these n8 tiles a warp
  };
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;  // b, d have their column count set per call
    std::vector<Bucket> buckets;  // ascending maxM; batch-invariant mode: exactly one, maxM = maxM_
  };
  using Key = std::tuple<int, int, int, int>;
  using Fp8Key = std::tuple<int, int, int>;  // N, K, io
  Plan& get(int N, int K, DType in, DType out, const void* W, int maxM);
  Plan makePlan(int N, int K, DType in, DType out);  // descriptors only, no buckets
  // The same of any types ("TN": W = A and X = B of type ab, transposed A), the FP8 and int8 plans' too.
  Plan makePlan(int N, int K, cublasComputeType_t compute, cudaDataType_t scale, cudaDataType_t ab, cudaDataType_t d);
  static void destroyPlan(Plan& p);
  static void setCols(cublasLtMatrixLayout_t l, int cols);
  static int32_t algoAttr(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr);
  void planInvariant(Plan& p, int N, int K, DType in, DType out, const void* W);
  int smallKernel(int N, int K, DType in, int splits, const void* W);  // Bucket::gemvInvTiles
  void runOwn(const Bucket& b, const void* X, const void* W, void* Y, int M, int N, int K, DType in);
  // The even GEMV (gemm_even.cc): reserveEven grows its workspace for the shape (synchronizing the stream, so at
  // planning only); runEven launches it.
  void reserveEven(int N, int K);
  void runEven(const void* X, const void* W, void* Y, int M, int N, int K, DType in);
  void planFast(Plan& p, int N, int K, DType in, DType out, const void* W, int maxM);
  // What a fast-mode plan chooses from, per M bucket (planBuckets): the GEMV at each of gemvRows where gemvServes
  // both ends of the bucket (and, where gemvEven is set, the even GEMV there too, timed only), and the
  // heuristic's cuBLASLt candidates on p. gemv, gemvEven and matmul launch one candidate
  // at M rows on the random X [maxM, K] (dtype in) into Y [maxM, N] (dtype out); matmul finds p's b and d at M
  // columns and returns false when cuBLASLt refuses the launch. prepare (optional) runs once on X before any.
  struct FastCandidates {
    DType in, out;
    std::vector<int> gemvRows;  // the first is the untimed choice
    std::function<bool(int M)> gemvServes;
    std::function<void(int M, int rows, const void* x, void* y)> gemv;
    std::function<void(int M, const void* x, void* y)> gemvEven;  // optional
    std::function<bool(int M, const cublasLtMatmulAlgo_t& algo, const void* x, void* y)> matmul;
    std::function<void(const void* x)> prepare;
  };
  // Fills p's buckets (fastBuckets(maxM)) from c: timed, the fastest candidate of each bucket (one warm-up, then
  // the best of three); untimed, the GEMV where it serves, else the heuristic's first pick. Throws when a bucket
  // has none.
  void planBuckets(Plan& p, int N, int K, int maxM, bool timed, const FastCandidates& c);
  // Split-K variants of a heuristic candidate, each handed to consider(algo, order) (planBuckets).
  template <typename F>
  void trySplitK(const cublasLtMatmulAlgo_t& base, const F& consider);
  bool gemvApplies(int M, int N, int K, DType in, DType out) const;
  const Bucket& bucketFor(const Plan& p, int M) const;
  static std::vector<int> fastBuckets(int maxM);
  std::vector<GemmChoice> exportBuckets(const Plan& p) const;
  std::string describeBuckets(const Plan& p) const;
  // Our invariant GEMM at M rows: on gemm_wgmma (Wgmma; Hybrid beyond kHybridInvMaxM), else gemm_inv.
  bool ownOnWgmma(int M) const {
    return invariant_ == InvariantGemm::Wgmma || (invariant_ == InvariantGemm::Hybrid && M > kHybridInvMaxM);
  }
  // Where gemm_inv would run, M <= gemvInvMaxM_ on kernels/gemv_inv.cu instead (the weights smallKernel chose):
  // gemm_inv's reduction with W streamed into registers, bitwise gemm_inv (unless KVSERVE_GEMV_INV=0).
  bool ownOnGemvInv(const Bucket& b, int M) const;
  // Fills p's buckets from choices for M <= limit; "" or why not. gemvServes(M, choice): whether a GEMV range
  // (its gemvRows, or the even GEMV) may be there.
  template <typename GemvServes>
  std::string importBuckets(Plan& p, const std::vector<GemmChoice>& choices, int limit, const GemvServes& gemvServes);
  // FP8 (gemm_fp8.cc)
  void requireFast(const char* what) const;
  Plan& getFp8(int N, int K, DType io, const void* W8, const float* wScale, int maxM);
  Plan makePlanFp8(int N, int K, DType io);
  void planFastFp8(Plan& p, int N, int K, DType io, const void* W8, const float* wScale, int maxM);
  bool fp8GemvApplies(int M, int N, int K, DType io) const;
  void reserveFp8Scratch(int M, int K);
  // A: wScale, B: xScale (null: the scratch's scales; a null wScale is a stand-in for the heuristic's queries).
  void setFp8Scales(Plan& p, const float* wScale, const float* xScale = nullptr);
  void quantizeFp8(const void* X, int M, int K, DType io);  // X [M, K] per row into the scratch
  // The matmul of bucket algorithm `algo` at M rows on quantized X (the scratch's or a producer's).
  cublasStatus_t matmulFp8(Plan& p, const cublasLtMatmulAlgo_t& algo, const void* Xq, const float* xScale, const void* W8,
                           const float* wScale, void* Y, int M);
  // INT8 (gemm_int8.cc)
  Plan& getInt8(int N, int K, DType io, const void* W8, const float* wScale, int maxM);
  Plan makePlanInt8(int N, int K);
  void planFastInt8(Plan& p, int N, int K, DType io, const void* W8, const float* wScale, int maxM);
  bool int8GemvApplies(int M, int N, int K, DType io) const;
  void reserveInt8Scratch(int M, int N, int K);
  void quantizeInt8(const void* X, const float* actSmooth, int M, int K, DType io);  // X into the scratch
  // Bucket b on the scratch's xq (quantized already): the GEMV, or the IMMA matmul into the int32 scratch and
  // its dequantization.
  cublasStatus_t productInt8(Plan& p, const Bucket& b, const void* W8, const float* wScale, void* Y, int M, int N, int K,
                             DType io);

  cudaStream_t stream_;
  int maxM_, probeM_;
  GemmMode mode_;
  InvariantGemm invariant_;
  int numSms_ = 1;
  DeviceBuffer ownWorkspace_;  // kvsk_gemm_inv's or kvsk_gemm_wgmma's: counters (kept zero between calls), partition sums
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspaceBytes_;
  std::map<Key, Plan> plans_;
  std::map<Fp8Key, Plan> fp8Plans_;
  DeviceBuffer fp8X_;      // [M, K] e4m3: X quantized per row for cuBLASLt's FP8 matmul
  DeviceBuffer fp8Scale_;  // [M] float32: its per-row scales
  std::map<Fp8Key, Plan> int8Plans_;  // N, K, io
  DeviceBuffer int8X_;     // [M, K] int8: X quantized per row
  DeviceBuffer int8Scale_; // [M] float32: its per-row scales
  DeviceBuffer int8Acc_;   // [M, N] int32: cuBLASLt's product, before kvsk_dequant_int8
  int fp8GemvVersion_;     // kvsk_gemv_fp8_params.version: 2, or 1 with KVSERVE_GEMV_FP8=v1
  bool gemvEven_;          // not KVSERVE_GEMV_EVEN=0
  bool gemvInv_;           // not KVSERVE_GEMV_INV=0: gemm_inv's M <= gemvInvMaxM_ may run kvsk_gemv_inv (the same bits)
  int gemvInvMaxM_ = 8;    // KVSERVE_GEMV_INV_MAX_M: the largest M gemv_inv serves (KVSK_GEMV_INV_MAX_M at most)
  bool fastGemvInv_;       // fast mode, not KVSERVE_FAST_GEMV_INV=0: run(gemvInv)'s multi-partition GEMVs on gemv_inv
  int gemvInvTrigger_;     // KVSERVE_GEMV_INV_TRIGGER: kvsk_pdl_trigger of every gemv_inv launch
  int gemvTrigger_;        // KVSERVE_GEMV_TRIGGER: of every kvsk_gemv launch (and the forward pass's fused ones)
  int fp8GemvTrigger_;     // KVSERVE_GEMV_FP8_TRIGGER: of every kvsk_gemv_fp8 launch (and the fused ones)
  bool splitK_;            // KVSERVE_GEMM_SPLITK=1: planBuckets also times split-K variants (trySplitK)
  DeviceBuffer evenWorkspace_;  // kvsk_gemv_even's: per-CTA counters (kept zero between calls) and parts
};

}  // namespace kvs::cuda
