/* The one header of kvserve's CUDA kernels: a plain parameter struct per kernel and its launcher.
 * Plain C (no templates, no engine types) so that any host code can call it. Every launcher enqueues on
 * `stream`, never synchronizes, and returns cudaGetLastError() after its launch(es) (or
 * cudaErrorInvalidValue / cudaErrorNotSupported for shapes it does not handle).
 *
 * Layout conventions (row-major everywhere):
 *   T  new tokens of the step, S sequences, R sampled rows, V vocab, H hidden, I intermediate,
 *   Hq query heads, Hkv KV heads (Hq % Hkv == 0, G = Hq / Hkv), D head_dim.
 *   KV cache of one layer: k and v each [numBlocks, blockSize, Hkv, D]; a token's slot is
 *   block * blockSize + offset.
 *   dtype of activations, weights and cache: one kvsk_dtype per call (the cache may be fp8 instead:
 *   kvsk_kv_dtype); reductions are in float32.
 */
#pragma once
#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { KVSK_F32 = 0, KVSK_BF16 = 1, KVSK_F16 = 2 } kvsk_dtype; /* == kvs::DType */

/* The KV cache's element type, a field of the rope+cache, attention and block-copy params. KVSK_KV_SAME (0,
 * what a zero-initialized struct holds): the call's dtype. KVSK_KV_FP8_E4M3: one byte per element, OCP e4m3
 * (bias 7, largest finite 448, 0x7F NaN, no infinities), same layout, with one float32 scale per layer for K
 * and one for V: stored = e4m3(value / scale) (IEEE division, round to nearest even, saturated to +-448),
 * read = stored * scale. Attention over an fp8 cache runs on tensor cores only (bf16/f16 queries, head_dim
 * 64, 128, 256, G <= 16) with f16 operands: see kvsk_attention. */
typedef enum { KVSK_KV_SAME = 0, KVSK_KV_FP8_E4M3 = 1 } kvsk_kv_dtype;

/* Programmatic dependent launch for the forward pass's kernels (embedding, RMSNorm, RoPE + cache,
 * attention, SiLU-and-mul, GEMV, FP8 activation quantization, FP8 GEMV, batch-invariant GEMMs; RMSNorm and
 * SiLU-and-mul keep it when they write e4m3 rows): each may start while its
 * predecessor drains, waiting on the device until the predecessor's results are visible. Process-wide; off
 * by default; turn it on only for a device of compute capability 9.0 or newer. */
void kvsk_set_programmatic_launch(int on);

/* out[t, :] = table[tokenIds[t], :]. Ids outside [0, vocab) produce zeros (the host validates first). */
typedef struct {
  const void* table;        /* [vocab, H] */
  const int32_t* tokenIds;  /* [T] */
  void* out;                /* [T, H] */
  int numTokens, hidden, vocab;
  kvsk_dtype dtype;
} kvsk_embedding_params;
cudaError_t kvsk_embedding(const kvsk_embedding_params* p, cudaStream_t stream);

/* Residual add fused with RMSNorm, rounding like transformers' LlamaRMSNorm. For r in [0, rows), with
 * src = rowIndex ? rowIndex[r] : r (rowIndex gathers the sampled rows for the final norm):
 *   if add != NULL: residual[src] = dtype(residual[src] + add[src])        (the decoder's "h = h + x")
 *   out[r] = dtype(weight * dtype(x * rsqrt(mean(x^2) + eps)))  with x = residual[src] in float32
 * With outQ != NULL the kernel also writes out[r] quantized for an FP8 GEMM, bit for bit what
 * kvsk_quantize_rows_fp8 makes of out (outQ = its xq, outScale = its xScale), and `out` may be NULL (then only
 * the e4m3 rows are written). outQ needs bf16/f16, H % 8 == 0 and 8-byte aligned outQ; else
 * cudaErrorInvalidValue. The fields after dtype may be left zero (no quantized output). */
typedef struct {
  const void* add;          /* [*, H] or NULL */
  void* residual;           /* [*, H] in/out */
  const int32_t* rowIndex;  /* [rows] or NULL */
  const void* weight;       /* [H] */
  void* out;                /* [rows, H], or NULL when outQ is set */
  int rows, hidden;
  float eps;
  kvsk_dtype dtype;
  void* outQ;               /* [rows, H] e4m3 bytes, or NULL */
  float* outScale;          /* [rows] with outQ */
} kvsk_rmsnorm_params;
cudaError_t kvsk_rmsnorm(const kvsk_rmsnorm_params* p, cudaStream_t stream);

/* Per token, per head of the fused qkv projection: optional bias (qwen2), optional per-head RMSNorm of q and
 * k (qwen3), RoPE with HF's rotate_half pairing (i, i + D/2) on q and k, then q to qOut and k, v to the paged
 * cache at slotMapping[t] (slot < 0: not written). cos/sin are float32 cos/sin of (float)pos * invFreq[i],
 * rounded to dtype as transformers does before the multiply. */
typedef struct {
  const void* qkv;          /* [T, (Hq + 2 Hkv) * D]: q heads, then k heads, then v heads */
  void* qOut;               /* [T, Hq, D] */
  void* kCache;             /* [numBlocks, blockSize, Hkv, D] */
  void* vCache;             /* [numBlocks, blockSize, Hkv, D] */
  const int32_t* positions; /* [T] */
  const int32_t* slotMapping; /* [T] */
  const float* invFreq;     /* [D/2], computed on the host exactly like transformers */
  const void* bias;         /* [(Hq + 2 Hkv) * D] or NULL */
  const void* qNorm;        /* [D] or NULL */
  const void* kNorm;        /* [D] or NULL */
  float normEps;
  int numTokens, numHeads, numKvHeads, headDim;
  kvsk_dtype dtype;
  kvsk_kv_dtype cacheDtype; /* fp8: k and v (the values rounded to dtype) written as e4m3(x / scale) */
  float kScale, vScale;     /* the layer's scales (> 0), read only for fp8 */
  int vector;               /* 1: the 16-bytes-a-lane kernel where it serves (bf16/f16, head_dim 16-256 a power of
                               two, no q/k norm, 16-byte aligned buffers: 8 for an fp8 cache), else the scalar one;
                               the same bits */
} kvsk_rope_cache_params;
cudaError_t kvsk_rope_cache(const kvsk_rope_cache_params* p, cudaStream_t stream);

/* The prefill-shaped attention kernel: what prefill, chunked-prefill and mixed launches run (decode launches
 * run the decode kernel whatever this says). KVSK_ATTN_PREFILL_V1 (0, what a zero-initialized struct holds):
 * 4 warps x 16 rows, 64-row tiles. KVSK_ATTN_PREFILL_V2 (kernels/flash_prefill.cuh): 4 warps x 32 rows,
 * 128-row tiles planned longest first, the mask only on diagonal tiles; bf16/f16 at head_dim 64 and 128 over
 * either cache. Both give the same bits for every row. KVSK_ATTN_PREFILL_AUTO (asked of kvsk_attention_plan
 * only, which resolves it per step): version 2 where it serves the shape and the step's longest query holds at
 * least KVSK_ATTN_PREFILL_AUTO_MIN_QUERY tokens (where its 128-row tiles pay: 1.5-1.8x version 1 from 2,048
 * tokens on the H200, 0.9x at 512), else version 1. Since both give the same bits, the choice depending on the
 * rest of the batch keeps batch invariance. */
typedef enum { KVSK_ATTN_PREFILL_V1 = 0, KVSK_ATTN_PREFILL_V2 = 1, KVSK_ATTN_PREFILL_AUTO = 2 } kvsk_attn_prefill;
#define KVSK_ATTN_PREFILL_AUTO_MIN_QUERY 1024

/* Paged attention over the cache for prefill, chunked prefill and decode in one launch (causal).
 * Work is a list of tiles: tile i covers query tokens [tileQStart[i], tileQStart[i] + tokensPerTile) of
 * sequence tileSeq[i] (relative to the sequence's first new token, clipped to its qLen) and all G query heads
 * of one KV head, so each K/V block is loaded once for the whole group. New token j of sequence s sits at
 * absolute position contextLens[s] - qLen(s) + j and sees keys [0, that position].
 * Split-KV (flash-decoding): a sequence with qLen == 1 and contextLens > partitionSize has its keys cut into
 * ceil(ctx / partitionSize) partitions computed by separate CTAs and merged by a second kernel; whether a
 * token is split depends on its own sequence only, so results do not depend on the rest of the batch.
 * tileSplitSlot[i] >= 0 numbers those tiles: slot k owns partial*[k, Hq, maxSplits, ...]. */
typedef struct {
  const void* q;               /* [T, Hq, D] */
  const void* kCache;          /* [numBlocks, blockSize, Hkv, D] */
  const void* vCache;          /* [numBlocks, blockSize, Hkv, D] */
  void* out;                   /* [T, Hq, D] */
  const int32_t* blockTables;  /* [S, maxBlocksPerSeq] */
  const int32_t* queryStart;   /* [S+1] */
  const int32_t* contextLens;  /* [S] */
  const int32_t* tileSeq;      /* [numTiles] */
  const int32_t* tileQStart;   /* [numTiles] */
  const int32_t* tileSplitSlot;/* [numTiles], -1 = not split */
  float* partialOut;           /* [numSplitSlots, Hq, maxSplits, D] unnormalized */
  float* partialMax;           /* [numSplitSlots, Hq, maxSplits] running max of scaled scores */
  float* partialSum;           /* [numSplitSlots, Hq, maxSplits] sum of exp(score - max) */
  int numTiles, tokensPerTile, numSplitSlots, maxSplits, partitionSize;
  int numHeads, numKvHeads, headDim, blockSize, maxBlocksPerSeq;
  float scale;                 /* softmax scale, usually 1/sqrt(D) */
  kvsk_dtype dtype;
  kvsk_kv_dtype cacheDtype;    /* fp8: kCache/vCache hold e4m3 bytes, read as stored * kScale / vScale */
  float kScale, vScale;        /* the layer's scales (finite, > 0), read only for fp8 */
  kvsk_attn_prefill prefill;   /* the plan's info.prefill (its tiles' rows); read by non-decode launches */
  /* Decode launches only (ignored otherwise): 0 or 1 the split decode kernel, then a merge kernel when any tile
   * is split; 2 one launch (flash_decode_v2.cuh, see kvsk_attention_decode_v2_supported), the same bits. */
  int decodeVersion;
  int decodeStages;            /* version 2: its K/V ring, 2, 3 or 4 tiles of 64 keys (the same bits); 0 by device */
  unsigned* splitCounters;     /* version 2 with split slots: [numSplitSlots, Hkv], zero before the first launch;
                                  each launch leaves them zero (one launch at a time per array: stream order) */
} kvsk_attention_params;
/* Host-side planning of the tiles from host copies of queryStart and contextLens: fills tileSeq, tileQStart,
 * tileSplitSlot (capacity >= T entries suffices) and the counts below. decode = every sequence has qLen 1
 * (a smaller CTA shape); the per-row arithmetic is the same in both shapes. bf16/f16 with head_dim 64, 128
 * or 256 run on tensor cores (flash_attention.cuh), the rest on CUDA cores (paged_attention.cuh): the dtype
 * picks the kernel and so the rows of a tile. `prefill` asks for a prefill-shaped kernel: version 2 where it
 * serves the shape (not a decode plan), else version 1, AUTO choosing per step as above; info->prefill says
 * which the tiles are for, V1 or V2 (copy it
 * into kvsk_attention_params.prefill). Version 2's tiles are listed longest first (keys each CTA walks).
 * Returns 0, or -1 when (headDim, group) is not supported or prefill is not a kvsk_attn_prefill, -2 when
 * capacity is too small. */
typedef struct {
  int numTiles, tokensPerTile, numSplitSlots, maxSplits, decode;
  kvsk_attn_prefill prefill;
} kvsk_attention_plan_info;
int kvsk_attention_plan(const int32_t* queryStartHost, const int32_t* contextLensHost, int numSeqs,
                        int numHeads, int numKvHeads, int headDim, kvsk_dtype dtype, int partitionSize,
                        kvsk_attn_prefill prefill, int32_t* tileSeq, int32_t* tileQStart, int32_t* tileSplitSlot,
                        int capacity, kvsk_attention_plan_info* info);
/* cudaErrorInvalidValue when a tile holds more rows (tokensPerTile * G) than its kernel's CTA (16 decode, 64
 * version 1, 128 version 2), cudaErrorNotSupported for prefill = KVSK_ATTN_PREFILL_V2 on a shape it does not
 * serve (a non-decode launch). */
cudaError_t kvsk_attention(const kvsk_attention_params* p, int decode, cudaStream_t stream);
/* Dynamic shared memory of one CTA of prefill version 2 for this shape, or 0 where version 2 does not serve it
 * (its plan falls back to version 1): a caller compares it with the device's sharedMemPerBlockOptin before
 * asking for version 2 (102 KiB at head_dim 128, 104 KiB over an fp8 cache: more than compute capability 8.6
 * and 8.9 allow). */
size_t kvsk_attention_prefill_v2_smem(kvsk_dtype dtype, kvsk_kv_dtype cacheDtype, int headDim, int numHeads,
                                      int numKvHeads);
/* Over an fp8 cache (cacheDtype KVSK_KV_FP8_E4M3) attention runs on the tensor-core kernels only, with the
 * same plan, tiling, split-KV and merge (the CUDA-core kernel returns cudaErrorNotSupported): the K/V tiles
 * stream in as bytes, the operands are f16 (every e4m3 value is one; bf16 queries are converted to f16,
 * saturated at +-65504; P is rounded to f16), the scores are scaled by scale * kScale and the output (and
 * the split partials) by vScale, never each element. A decode row gives the same bits in a decode and in a
 * mixed step, as over a bf16/f16 cache. 1 when this shape can use an fp8 cache (bf16/f16, head_dim 64, 128 or
 * 256, Hq % Hkv == 0, G <= 16). */
int kvsk_attention_fp8_supported(kvsk_dtype dtype, int headDim, int numHeads, int numKvHeads);
/* Decode attention in one launch (decodeVersion 2): a CTA per (tile, KV head, partition) streams its keys through
 * a 2- to 4-stage cp.async ring and writes its partial; the last of a split tile's partitions to arrive (a
 * counter per slot and KV head in splitCounters, zeroed again by that CTA, so CUDA graphs replay it) merges them
 * in the same launch. The per-tile arithmetic, the partitions and the merge are version 1's, term for term: a
 * decode row gives the same bits in either version (and so in a mixed step), whatever the ring depth, the
 * grid's maxSplits or the order in which CTAs finish. It reads queryStart, contextLens, blockTables and the tile
 * arrays before the programmatic-launch wait, so the kernel launched just before it must not write them (the
 * engine uploads them once per step). 1 when this shape can run it: bf16/f16 with a cache of the same dtype or
 * fp8, head_dim 64 or 128, Hq % Hkv == 0, G <= 16, and the merge of G heads x maxSplits partitions fits its
 * shared memory (maxSplits up to 64 always does); kvsk_attention returns cudaErrorNotSupported otherwise. */
int kvsk_attention_decode_v2_supported(kvsk_dtype dtype, kvsk_kv_dtype cacheDtype, int headDim, int numHeads, int numKvHeads,
                                       int maxSplits);

/* Where a GEMV-shaped kernel (kvsk_gemv and its fused variants, kvsk_gemv_fp8 version 2, kvsk_gemv_inv) lets the
 * next kernel launch (programmatic dependent launch): right after its wait on the previous kernel (EARLY), once
 * its CTA's weight stream is done (LATE: gemv and gemv_inv after their k-loop, the persistent FP8 GEMV when it
 * starts its last tile), or at its end, the kernel itself launched without PDL (OFF). Timing only: the same bits. */
typedef enum {
  KVSK_PDL_TRIGGER_EARLY = 0,
  KVSK_PDL_TRIGGER_LATE = 1,
  KVSK_PDL_TRIGGER_OFF = 2,
} kvsk_pdl_trigger;

/* Skinny GEMM for decode (memory bound: W read once): y[M, N] = x[M, K] w[N, K]^T, float32 sums, bf16/f16
 * only, 1 <= M <= KVSK_GEMV_MAX_M, K % 8 == 0, x and w 16-byte aligned. Rows of y depend only on their row of
 * x, but the reduction order is not cuBLASLt's (the batch-invariant mode does not use it). */
#define KVSK_GEMV_MAX_M 8
typedef struct {
  const void* x;            /* [M, K] */
  const void* w;            /* [N, K] */
  void* y;                  /* [M, N] */
  int m, n, k;
  kvsk_dtype dtype;
  int rowsPerCta;           /* rows of w per CTA: 1, 2 or 4 (0 = 4); the same results for each */
  int trigger;              /* kvsk_pdl_trigger */
} kvsk_gemv_params;
int kvsk_gemv_supported(int m, int n, int k, kvsk_dtype dtype);
cudaError_t kvsk_gemv(const kvsk_gemv_params* p, cudaStream_t stream);

/* The same GEMV (shapes: kvsk_gemv_supported) with W's 16-byte chunks, row-major, cut into `ctas` equal
 * contiguous pieces, one per CTA (gemv_even.cu): a CTA streams many whole rows and, at its ends, part of a row.
 * A row wholly inside a piece is summed in kvsk_gemv's order (the same bits); a row cut between pieces is the
 * float32 sum of its parts in CTA order, added by the last of its CTAs to finish (its counter in the workspace,
 * reset by that CTA). A row of y depends on its row of x and on N, K and ctas only, never on M. Launched with
 * programmatic dependent launch (W prefetched and the first loads issued before the wait). One launch at a
 * time per workspace (the stream orders them); shapes of any grid may share one workspace. */
typedef struct {
  const void* x;            /* [M, K] */
  const void* w;            /* [N, K] */
  void* y;                  /* [M, N] */
  int m, n, k;
  kvsk_dtype dtype;
  int ctas;                 /* pieces, >= 1 (at most one per chunk: more are clamped): kvsk_gemv_even_ctas for one wave */
  void* workspace;          /* >= kvsk_gemv_even_workspace_bytes(ctas), 16-byte aligned, zero before the first launch
                               (each launch leaves it so where it matters) */
  size_t workspaceBytes;
} kvsk_gemv_even_params;
/* The CTAs of one wave for a weight [n, k]: numSms times the fewest CTAs per SM of any M and dtype (so that the
 * grid, and with it every bit, is the same at every M), at most one per chunk. 0 when the occupancy query fails. */
int kvsk_gemv_even_ctas(int n, int k, int numSms);
size_t kvsk_gemv_even_workspace_bytes(int ctas);
cudaError_t kvsk_gemv_even(const kvsk_gemv_even_params* p, cudaStream_t stream);

/* The batch-invariant GEMM of bf16/f16 (gemm_inv.cu, gemm_inv.cuh): y[M, N] = dtype(sum_k x[m, k] w[n, k]) on
 * tensor cores (mma.sync m16n8k16, float32 sums), every element by one fixed sequence of operations that
 * depends on (k, splits) only: K in chunks of 64 (zero-padded), chunks in `splits` k-partitions of
 * ceil(chunks / splits) chunks, each partition one mma chain from zero over its chunks in order (four mmas
 * per chunk, each on 16 consecutive elements), the partition sums added to zero in order, then rounded
 * (round to nearest even; gemm_inv.cuh states it exactly). So a row of y has the same bits whatever M is,
 * wherever it falls in a tile, whatever `tile` and `split` say: those only pick how the work is laid out
 * (tile shape, and whether a CTA walks all partitions or one, with the others' sums meeting in `workspace`).
 * Two `splits` with the same ceil(chunks / splits) give the same bits.
 * bf16/f16, K % 8 == 0, x and w 16-byte aligned; any M >= 1, N >= 1. Launched with programmatic dependent
 * launch (the first stages of w are requested before the wait). One launch at a time per workspace (the
 * stream orders them). */
typedef enum {
  KVSK_GEMM_INV_TILE_AUTO = 0,  /* by M: 16 x 64 up to M = 16, 64 x 128 up to 128, then 128 x 128 */
  KVSK_GEMM_INV_TILE_16x64 = 1, /* 4 warps, 4 stages: memory-bound small M, W streamed once per 16 rows */
  KVSK_GEMM_INV_TILE_64x128 = 2,
  KVSK_GEMM_INV_TILE_128x128 = 3
} kvsk_gemm_inv_tile;
typedef struct {
  const void* x;            /* [M, K] */
  const void* w;            /* [N, K] */
  void* y;                  /* [M, N] */
  int m, n, k;
  kvsk_dtype dtype;         /* bf16 or f16 */
  int splits;               /* k-partitions, >= 1: kvsk_gemm_inv_splits(n, k, SMs) for the weight, fixed for all M */
  kvsk_gemm_inv_tile tile;  /* 0: by M */
  int split;                /* -1: by M; 0: every CTA walks all partitions; 1: a CTA per partition (needs workspace) */
  void* workspace;          /* split: per-tile counters (zero before the first launch; each launch leaves them zero)
                               then float32 partition sums; NULL: never split */
  size_t workspaceBytes;
  int numSms;               /* the device's multiprocessors, for the automatic choices */
} kvsk_gemm_inv_params;
int kvsk_gemm_inv_supported(int n, int k, kvsk_dtype dtype);
/* The k-partitions for a weight [n, k]: enough that the 16 x 64 tiles fill the GPU at M = 1. */
int kvsk_gemm_inv_splits(int n, int k, int numSms);
/* What kvsk_gemm_inv runs for these params (tile and split resolved; split 0 when it cannot: one partition or
 * more than 16, no or too small a workspace, more than 16384 tiles for the counters). */
typedef struct {
  kvsk_gemm_inv_tile tile;
  int split;
} kvsk_gemm_inv_choice;
kvsk_gemm_inv_choice kvsk_gemm_inv_choose(const kvsk_gemm_inv_params* p);
/* The workspace the automatic choices (tile and split by M) use at some M in [1, maxM]: the largest; 0 when they
 * never split. A smaller workspace only makes them split less often (the same bits). */
size_t kvsk_gemm_inv_workspace_bytes(int maxM, int n, int k, int splits, int numSms);
cudaError_t kvsk_gemm_inv(const kvsk_gemm_inv_params* p, cudaStream_t stream);

/* kvsk_gemm_inv's GEMM for 1 <= M <= KVSK_GEMV_INV_MAX_M (gemv_inv.cu): the same reduction, so every row of y
 * bitwise kvsk_gemm_inv's on the same `splits`, with W streamed from global memory straight into registers as
 * the decode GEMV streams it (no shared-memory staging, no barrier per chunk). bf16/f16, K % 8 == 0, x and w
 * 16-byte aligned, at most 16 k-partitions. No workspace: a CTA holds all partitions of its columns.
 * tilesPerWarp: n8 tiles (8 rows of w) a warp streams, 1 or 2; 0 for 2. Launched with programmatic dependent
 * launch (the first chunks of w are loaded before the wait). */
#define KVSK_GEMV_INV_MAX_M 16
typedef struct {
  const void* x;  /* [M, K] */
  const void* w;  /* [N, K] */
  void* y;        /* [M, N] */
  int m, n, k;
  kvsk_dtype dtype;
  int splits;        /* as kvsk_gemm_inv's: the weight's k-partitions */
  int tilesPerWarp;  /* 1 or 2; 0: 2 */
  int trigger;       /* kvsk_pdl_trigger */
} kvsk_gemv_inv_params;
int kvsk_gemv_inv_supported(int m, int n, int k, kvsk_dtype dtype, int splits);
cudaError_t kvsk_gemv_inv(const kvsk_gemv_inv_params* p, cudaStream_t stream);

/* The same GEMM on Hopper's warpgroup MMA (gemm_wgmma.cu, gemm_wgmma.cuh; sm_90a): y[M, N] = dtype(sum_k x[m, k]
 * w[n, k]) with every element computed by one fixed sequence of operations that depends on (k, splits) only: K in
 * chunks of 64 (zero-padded), chunks in `splits` k-partitions of ceil(chunks / splits) chunks, each partition one
 * chain of wgmma.mma_async.m64n128k16 (float32) over its chunks in order (four per chunk, each on 16 consecutive
 * elements; the partition's first with scale-d 0), the partition sums added to zero in order, then rounded (round
 * to nearest even; gemm_wgmma.cuh states it exactly). Whether kvsk_gemm_inv on the same `splits` gives the same
 * bits (another instruction, mma.sync) is measured by the gemm-wgmma kernel suite; GemmRunner's hybrid mode relies on
 * it. Every M
 * runs on wgmma (rows padded to 64), so the bits of a row depend neither on M nor on where the row falls, nor on
 * `tile` or `split`, which only lay out the work (tile shape; whether a CTA walks all partitions or one, the
 * others' sums meeting in `workspace`). Operands are loaded by TMA from tensor maps made at each launch.
 * bf16/f16, K % 8 == 0, x and w 16-byte aligned; any M >= 1, N >= 1. Only where kvsk_gemm_wgmma_unavailable()
 * is NULL (cudaErrorNotSupported elsewhere). Launched with programmatic dependent launch (the first stages of w
 * are loaded before the wait). One launch at a time per workspace (the stream orders them). */
typedef enum {
  KVSK_GEMM_WGMMA_TILE_AUTO = 0,    /* by M: several k-partitions: 64 x 128 up to M = 256 (K >= 8192: 128 x 256
                                       split at M 65-128), then 128 x 128; one: 64 x 128 up to M = 64, then 128 x 256 */
  KVSK_GEMM_WGMMA_TILE_64x128 = 1,  /* one MMA warpgroup, 2 CTAs per SM: memory-bound small M */
  KVSK_GEMM_WGMMA_TILE_128x128 = 2, /* two MMA warpgroups */
  KVSK_GEMM_WGMMA_TILE_128x256 = 3  /* two MMA warpgroups of 64 x 256; one partition per CTA (else 128 x 128) */
} kvsk_gemm_wgmma_tile;
typedef struct {
  const void* x;              /* [M, K] */
  const void* w;              /* [N, K] */
  void* y;                    /* [M, N] */
  int m, n, k;
  kvsk_dtype dtype;           /* bf16 or f16 */
  int splits;                 /* k-partitions, >= 1: kvsk_gemm_wgmma_splits(n, k, SMs) for the weight, fixed for all M */
  kvsk_gemm_wgmma_tile tile;  /* 0: by M */
  int split;                  /* -1: by M; 0: every CTA walks all partitions; 1: a CTA per partition (needs workspace) */
  void* workspace;            /* split: per-tile counters (zero before the first launch; each launch leaves them zero)
                                 then float32 partition sums; NULL: never split */
  size_t workspaceBytes;
  int numSms;                 /* the device's multiprocessors, for the automatic choices */
} kvsk_gemm_wgmma_params;
/* NULL when the current device runs kvsk_gemm_wgmma (compute capability 9.0, sm_90a code in this build, a driver
 * with tensor maps); else why not, in a few words. Found once per device (a device-to-host copy the first time:
 * ask before capturing a CUDA graph). */
const char* kvsk_gemm_wgmma_unavailable(void);
int kvsk_gemm_wgmma_supported(int n, int k, kvsk_dtype dtype);
/* The k-partitions for a weight [n, k]: enough that the 64 x 128 tiles fill the GPU at M = 1. */
int kvsk_gemm_wgmma_splits(int n, int k, int numSms);
/* What kvsk_gemm_wgmma runs for these params (tile and split resolved; split 0 when it cannot: one partition or
 * more than 16, no or too small a workspace, more than 16384 tiles for the counters; 128 x 256 without a split over
 * several partitions runs 128 x 128). */
typedef struct {
  kvsk_gemm_wgmma_tile tile;
  int split;
} kvsk_gemm_wgmma_choice;
kvsk_gemm_wgmma_choice kvsk_gemm_wgmma_choose(const kvsk_gemm_wgmma_params* p);
/* The workspace the automatic choices use at some M in [1, maxM]: the largest; 0 when they never split. A smaller
 * workspace only makes them split less often (the same bits). */
size_t kvsk_gemm_wgmma_workspace_bytes(int maxM, int n, int k, int splits, int numSms);
cudaError_t kvsk_gemm_wgmma(const kvsk_gemm_wgmma_params* p, cudaStream_t stream);

/* FP8 linear layers (E4M3 "e4m3fn": 1 sign, 4 exponent bits of bias 7, 3 mantissa bits; largest finite 448,
 * no infinities, 0x7f / 0xff are NaN), the scheme vLLM calls fp8 dynamic per-token and torch._scaled_mm
 * rowwise. Weights W8 [N, K] with one float32 scale per output row: W ~ W8[n, :] * wScale[n]. Activations are
 * quantized per token at run time: xq [M, K] with xScale [M]. Then
 *   y[m, n] = xScale[m] * wScale[n] * sum_k xq[m, k] * W8[n, k]   (float32 sums, y in bf16/f16).
 * Every e4m3 encode here is cvt.rn.satfinite: round to nearest, ties to even, |v| beyond 448 saturating to
 * +-448; NaN stays NaN. Every division is IEEE (correctly rounded), so a CPU reference reproduces the bytes. */
#define KVSK_FP8_E4M3_MAX 448.0f
/* Floor of an activation scale (as vLLM's per-token quantization): a row of zeros gets this scale, and no
 * row divides by zero. */
#define KVSK_FP8_MIN_ACT_SCALE (1.0f / (448.0f * 512.0f))

/* Per-row activation quantization, one CTA per row (a row of up to 16384 elements is read once and kept in
 * registers; longer rows are read twice, the second time from L2):
 *   xScale[m] = max(absmax(x[m, :]) / 448, KVSK_FP8_MIN_ACT_SCALE),  xq[m, k] = e4m3(x[m, k] / xScale[m]).
 * x bf16/f16, K % 8 == 0, x 16-byte and xq 8-byte aligned. Launched with programmatic dependent launch. */
typedef struct {
  const void* x;            /* [M, K] dtype */
  void* xq;                 /* [M, K] e4m3 bytes */
  float* xScale;            /* [M] */
  int m, k;
  kvsk_dtype dtype;         /* of x: bf16 or f16 */
} kvsk_quantize_rows_fp8_params;
cudaError_t kvsk_quantize_rows_fp8(const kvsk_quantize_rows_fp8_params* p, cudaStream_t stream);

/* Per-row weight quantization (at load, on the device), any K >= 1:
 *   s = absmax(w[n, :]) / 448;  wScale[n] = s if s >= FLT_MIN, FLT_MIN if 0 < absmax, 1 for a row of zeros;
 *   w8[n, k] = e4m3(w[n, k] / wScale[n]).   w f32/bf16/f16. */
typedef struct {
  const void* w;            /* [N, K] dtype */
  void* w8;                 /* [N, K] e4m3 bytes */
  float* wScale;            /* [N] */
  int n, k;
  kvsk_dtype dtype;
} kvsk_quantize_weight_fp8_params;
cudaError_t kvsk_quantize_weight_fp8(const kvsk_quantize_weight_fp8_params* p, cudaStream_t stream);

/* Skinny FP8-weight GEMM for decode (memory bound: W8 read once), x NOT quantized:
 *   y[m, n] = dtype(wScale[n] * sum_k x[m, k] * e4m3value(w8[n, k]))   for 1 <= M <= KVSK_GEMV_FP8_MAX_M.
 * Tensor cores (mma.sync m16n8k16, float32 accumulators) on e4m3 converted exactly to bf16/f16, so the only
 * difference from a float64 dot of the dequantized operands is the float32 sum order (version 2 with bf16 x:
 * also x's rounding to f16, exact for |x| in [2^-17, 65504], saturated beyond). x bf16/f16,
 * K % 16 == 0, x and w8 16-byte aligned, any N. A row of y depends only on its row of x (not on M), and
 * rowsPerCta changes only the CTA shape, never a sum. Launched with programmatic dependent launch (W8 is
 * prefetched before the wait). Not for the batch-invariant mode (its sum order is not cuBLASLt's). */
#define KVSK_GEMV_FP8_MAX_M 16
typedef struct {
  const void* x;            /* [M, K] dtype */
  const void* w8;           /* [N, K] e4m3 bytes */
  const float* wScale;      /* [N] */
  void* y;                  /* [M, N] dtype */
  int m, n, k;
  kvsk_dtype dtype;         /* of x and y: bf16 or f16 */
  int rowsPerCta;           /* rows of w8 per CTA: 16, 32 or 64 (4, 8 or 16 warps; 0 = 16) */
  int version;              /* 0 or 1: kernels/gemv_fp8.cu (bf16 x: bf16 operands); 2: gemv_fp8_v2.cu (f16 operands,
                               x staged in shared memory, persistent CTAs that each walk rowsPerCta rows at a time;
                               bf16 x is rounded to f16, saturated to +-65504). Sums differ between versions, never
                               within one. */
  int trigger;              /* kvsk_pdl_trigger (version 2; versions 0 and 1 trigger early) */
} kvsk_gemv_fp8_params;
int kvsk_gemv_fp8_supported(int m, int n, int k, kvsk_dtype dtype);
cudaError_t kvsk_gemv_fp8(const kvsk_gemv_fp8_params* p, cudaStream_t stream);

/* out[t, i] = dtype(dtype(silu(gateUp[t, i])) * gateUp[t, I + i]) (transformers' act_fn(gate) * up).
 * (No e4m3 output as kvsk_rmsnorm has: written fused, one CTA per token, it ran at 40% of copy bandwidth on
 * the H200, slower than this kernel plus kvsk_quantize_rows_fp8.) */
typedef struct {
  const void* gateUp;       /* [T, 2I]: gate then up */
  void* out;                /* [T, I] */
  int numTokens, intermediate;
  kvsk_dtype dtype;
} kvsk_silu_mul_params;
cudaError_t kvsk_silu_mul(const kvsk_silu_mul_params* p, cudaStream_t stream);

/* Copies whole blocks (all layers, K and V) for copy-on-write: cache is [numLayers * 2] planes of
 * planeElems elements each, a block is blockElems contiguous elements of a plane. */
typedef struct {
  void* cache;
  const int32_t* pairs;     /* [2 * numPairs] (src, dst) block ids */
  int numPairs, numPlanes;
  int64_t planeElems, blockElems;
  kvsk_dtype dtype;
  kvsk_kv_dtype cacheDtype; /* fp8: 1-byte elements */
} kvsk_block_copy_params;
cudaError_t kvsk_block_copy(const kvsk_block_copy_params* p, cudaStream_t stream);

/* The bf16/f16 GEMV (kvsk_gemv: M <= KVSK_GEMV_MAX_M, the same sums in the same order) with the kernel that
 * follows it fused into its epilogue: results bitwise those of kvsk_gemv then that kernel, and gemv.y (may be
 * NULL) is never written. gemv.rowsPerCta as the GEMM plan tuned it: 1 or 2 -> 2 rows per CTA, 0 or 4 -> 4.
 * - kvsk_gemv_rope_cache: gemv is the fused qkv projection (n = (Hq + 2 Hkv) D, m = rope.numTokens); does
 *   what kvsk_rope_cache does (bias, RoPE, q to qOut, k and v to the cache, fp8 cache too) without reading
 *   rope.qkv. A CTA takes rows i and i + D/2 of a head. Not with the per-head q/k RMSNorm (qNorm or kNorm
 *   set: it needs the whole head).
 * - kvsk_gemv_silu_mul: gemv is the fused gate/up projection (n = 2 I, m = silu.numTokens); writes silu.out
 *   without reading silu.gateUp. A CTA takes gate rows i and up rows I + i.
 * _supported: 1 when the shapes and variant fit; otherwise the launcher returns cudaErrorNotSupported (run
 * the two kernels). */
int kvsk_gemv_rope_cache_supported(const kvsk_gemv_params* gemv, const kvsk_rope_cache_params* rope);
cudaError_t kvsk_gemv_rope_cache(const kvsk_gemv_params* gemv, const kvsk_rope_cache_params* rope, cudaStream_t stream);
int kvsk_gemv_silu_mul_supported(const kvsk_gemv_params* gemv, const kvsk_silu_mul_params* silu);
cudaError_t kvsk_gemv_silu_mul(const kvsk_gemv_params* gemv, const kvsk_silu_mul_params* silu, cudaStream_t stream);
/* The same two fusions on the FP8 GEMV's version 2 (kvsk_gemv_fp8 with gemv.version = 2, which these require, the
 * same sums in the same order; gemv_fp8_fused.cu) for M <= KVSK_GEMV_MAX_M: results bitwise those of kvsk_gemv_fp8
 * then kvsk_rope_cache / kvsk_silu_mul, with the same variants and shapes as above, gemv.y (may be NULL) never
 * written. gemv.rowsPerCta as the FP8 plan tuned it (16, 32 or 64; 0 = 16); a tile of 16 rows holds 8 pairs, a
 * pair's rows in tile rows r and r + 8.
 * _supported: 1 when the shapes and variant fit; otherwise the launcher returns cudaErrorNotSupported (run
 * the two kernels). */
int kvsk_gemv_fp8_rope_cache_supported(const kvsk_gemv_fp8_params* gemv, const kvsk_rope_cache_params* rope);
cudaError_t kvsk_gemv_fp8_rope_cache(const kvsk_gemv_fp8_params* gemv, const kvsk_rope_cache_params* rope,
                                     cudaStream_t stream);
int kvsk_gemv_fp8_silu_mul_supported(const kvsk_gemv_fp8_params* gemv, const kvsk_silu_mul_params* silu);
cudaError_t kvsk_gemv_fp8_silu_mul(const kvsk_gemv_fp8_params* gemv, const kvsk_silu_mul_params* silu,
                                   cudaStream_t stream);
/* The calibration observer of an fp8 KV cache (kv_absmax.cu): for every plane p of the cache (numPlanes
 * planes of planeElems elements: [numLayers * 2 (K, V)] as the block copies see them),
 *   absMax[p] = max(absMax[p], max |plane_p[slot * rowElems + e]|)  over slots[i] >= 0, e in [0, rowElems),
 * accumulated with atomicMax on the float32 bits (start from zeros; exact, independent of the grid; a NaN
 * in the rows gives NaN). An fp8 cache gives the decoded e4m3 values (times 1: the caller applies the scale). */
typedef struct {
  const void* cache;        /* [numPlanes, planeElems] */
  int numPlanes;
  int64_t planeElems;
  int rowElems;             /* elements of one slot: Hkv * D */
  const int32_t* slots;     /* [numSlots] device; < 0 skipped */
  int numSlots;
  kvsk_dtype dtype;
  kvsk_kv_dtype cacheDtype;
  float* absMax;            /* [numPlanes] in/out */
} kvsk_kv_absmax_params;
cudaError_t kvsk_kv_absmax(const kvsk_kv_absmax_params* p, cudaStream_t stream);

/* INT8 linear layers (W8A8, SmoothQuant): weights W8 [N, K] int8 (symmetric, -127..127) with one float32
 * scale per output row, W ~ W8[n, :] * wScale[n], the SmoothQuant smoothing already folded in (into the
 * RMSNorm weight before q/k/v and gate/up; o_proj and down_proj carry a multiplier of their input instead).
 * Activations are quantized per token at run time, times that multiplier when there is one:
 *   v = x[m, k] * mul[k],  a = max(absmax_k |v|, KVSK_INT8_MIN_ABSMAX),
 *   xScale[m] = a / 127,  xq[m, k] = clamp(round_half_even(v * (127 / a)), -127, 127)
 * (every product and quotient rounded once: the CPU backend's quantizeActs), then
 *   y[m, n] = dtype(float(sum_k xq[m, k] W8[n, k]) * (xScale[m] * wScale[n]))
 * with the sum in int32, which is exact (|sum| <= 127^2 K < 2^31 for K < 133144): whichever kernel computes
 * it, in whatever order or split, a row of y depends on its row of x only, bit for bit. */
#define KVSK_INT8_MIN_ABSMAX 7.8886090522101181e-31f /* 2^-100 */

/* Per-row activation quantization, one CTA per row (a row of up to 16384 elements is read once and kept in
 * registers; longer rows are read twice, the second time from L2). x bf16/f16, K % 8 == 0, x and mul 16-byte
 * aligned, xq 8-byte aligned. Launched with programmatic dependent launch. */
typedef struct {
  const void* x;            /* [M, K] dtype */
  const float* mul;         /* [K] SmoothQuant multiplier of the input, or NULL (1) */
  void* xq;                 /* [M, K] int8 */
  float* xScale;            /* [M] */
  int m, k;
  kvsk_dtype dtype;         /* of x: bf16 or f16 */
} kvsk_quantize_rows_int8_params;
cudaError_t kvsk_quantize_rows_int8(const kvsk_quantize_rows_int8_params* p, cudaStream_t stream);

/* The dequantization of an int32 product (cuBLASLt's IMMA GEMM writes int32): y as above from acc[m, n].
 * N % 4 == 0; acc and wScale 16-byte aligned, y 8-byte aligned. Launched with programmatic dependent launch. */
typedef struct {
  const int32_t* acc;       /* [M, N] */
  const float* xScale;      /* [M] */
  const float* wScale;      /* [N] */
  void* y;                  /* [M, N] dtype */
  int m, n;
  kvsk_dtype dtype;         /* of y: bf16 or f16 */
} kvsk_dequant_int8_params;
cudaError_t kvsk_dequant_int8(const kvsk_dequant_int8_params* p, cudaStream_t stream);

/* Skinny int8 GEMM for decode (memory bound: W8 read once), on x quantized by kvsk_quantize_rows_int8:
 *   y[m, n] as above for 1 <= M <= KVSK_GEMV_INT8_MAX_M, with tensor cores (mma.sync m16n8k32, s8 x s8 -> s32).
 * K % 16 == 0, xq and w8 16-byte aligned, any N. The same bits as the dequantized cuBLASLt product (the int32
 * sums are exact and the epilogue is the same expression), for any M and rowsPerCta. Launched with
 * programmatic dependent launch (W8 is prefetched before the wait). */
#define KVSK_GEMV_INT8_MAX_M 16
typedef struct {
  const void* xq;           /* [M, K] int8 */
  const float* xScale;      /* [M] */
  const void* w8;           /* [N, K] int8 */
  const float* wScale;      /* [N] */
  void* y;                  /* [M, N] dtype */
  int m, n, k;
  kvsk_dtype dtype;         /* of y: bf16 or f16 */
  int rowsPerCta;           /* rows of w8 per CTA: 16, 32 or 64 (4, 8 or 16 warps; 0 = 16) */
} kvsk_gemv_int8_params;
int kvsk_gemv_int8_supported(int m, int n, int k, kvsk_dtype dtype);
cudaError_t kvsk_gemv_int8(const kvsk_gemv_int8_params* p, cudaStream_t stream);

/* Weight upload and dummy weights. */
typedef struct {
  const void* src; kvsk_dtype srcType;
  void* dst; kvsk_dtype dstType;
  int64_t n;
} kvsk_convert_params;
cudaError_t kvsk_convert(const kvsk_convert_params* p, cudaStream_t stream);
/* dst[i] = value if scale == 0, else uniform in [-scale, scale) from a hash of (seed, i): deterministic. */
typedef struct {
  void* dst; kvsk_dtype dtype; int64_t n;
  uint64_t seed; float scale; float value;
} kvsk_fill_params;
cudaError_t kvsk_fill(const kvsk_fill_params* p, cudaStream_t stream);

/* Sampling, in three launches (see sampling.cu for the algorithm and its RNG).
 * 1. kvsk_sample_prepare: raw logits -> float32 `raw` and its log-sum-exp (the row-fault check);
 *    `work` = raw + bias, -inf outside the row's allowed-token mask; the log-sum-exp of that and the top-K
 *    logprobs from it (as the CPU sampler: logprobs see the bias and the mask); then repetition penalty (HF),
 *    frequency/presence (OpenAI); greedy rows get their argmax in tokens[r] (ties to the lower id); other
 *    rows get work /= temperature.
 * 2. kvsk_sample_sort: the rows that need ranking (non-greedy with top-k or top-p) sorted descending
 *    (stable: ties keep the lower id first) into sortedKeys/sortedIds.
 * 3. kvsk_sample_finish: non-greedy rows draw after top-k, top-p, min-p with u = uniform(seed, seedStep)
 *    (unranked rows walk their candidates in id order, as the CPU sampler does); then every row's sampled
 *    logprob (of raw + bias, masked). */
typedef struct {
  const void* logits;       /* [R, V] in dtype (lm_head output) */
  kvsk_dtype dtype;
  int rows, vocab;
  float* raw;               /* [R, V] raw logits as float32 (what returnLogits returns) */
  float* work;              /* [R, V] processed logits */
  float* rawLse;            /* [R] log-sum-exp of raw; not finite: the row's logits broke down (a row fault) */
  float* rowLse;            /* [R] log-sum-exp of raw + bias, masked: max + log(sum(exp(x - max))) */
  int32_t* counts;          /* [R, V] scratch, must be all zero between calls (it is left zero) */
  const float* temperature; const float* topP; const int32_t* topK; const float* minP;
  const float* presencePenalty; const float* frequencyPenalty; const float* repetitionPenalty;
  const uint32_t* seeds; const int32_t* seedSteps; const int32_t* numLogprobs;  /* all [R] */
  const int32_t* historyStart;       /* [R+1] or NULL */
  const int32_t* historyOutputStart; /* [R] */
  const int32_t* historyTokens;
  const int32_t* biasStart;          /* [R+1] or NULL */
  const int32_t* biasTokens;
  const float* biasValues;
  const int32_t* maskRow;            /* [R] or NULL: row r's mask in `masks`, < 0 = none */
  const uint32_t* masks;             /* [M, ceil(V / 32)]: bit (t & 31) of word t >> 5 set = t allowed */
  /* sort */
  float* sortedKeys;        /* [R, V] scratch; after kvsk_sample_sort: the sorted keys (may point at work) */
  int32_t* sortedIds;       /* [R, V] scratch; after kvsk_sample_sort: the ids (may point at idsScratch) */
  int32_t* idsScratch;      /* [R, V] scratch */
  const int32_t* sortRows;  /* [numSortRows] non-greedy rows with topK in (0, V) or topP < 1 */
  int numSortRows;
  int32_t* segBegin;        /* [numSortRows] scratch offsets */
  int32_t* segEnd;          /* [numSortRows] */
  void* sortTemp; size_t sortTempBytes;
  /* outputs */
  int32_t* tokens;          /* [R] */
  float* logprobs;          /* [R] log-softmax of raw + bias (masked) at tokens[r], NaN when numLogprobs[r] < 0 */
  int topLogprobs;          /* K */
  int32_t* topIds;          /* [R, K], -1 padded */
  float* topValues;         /* [R, K] */
} kvsk_sample_params;
cudaError_t kvsk_sample_prepare(const kvsk_sample_params* p, cudaStream_t stream);
/* Bytes of sortTemp that kvsk_sample_sort needs for up to maxRows rows of `vocab`. */
size_t kvsk_sample_sort_temp_bytes(int maxRows, int vocab);
/* Sorts through CUB double buffers: on return p->sortedKeys / p->sortedIds point at the sorted rows. */
cudaError_t kvsk_sample_sort(kvsk_sample_params* p, cudaStream_t stream);
cudaError_t kvsk_sample_finish(const kvsk_sample_params* p, cudaStream_t stream);
/* The uniform draw in [0, 1) of (seed, step), bit-identical to kvs::uniform01 (engines/sampler.cc). */
double kvsk_uniform(uint32_t seed, int32_t step);

#ifdef __cplusplus
}
#endif
