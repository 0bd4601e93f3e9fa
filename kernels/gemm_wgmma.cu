// The batch-invariant bf16/f16 GEMM on wgmma (kernel and its fixed reduction: gemm_wgmma.cuh; shapes, k-partitions
// and the choice of tile and split by M: gemm_wgmma_layout.h): the tensor maps, the launches and the C ABI. None
// of the choices made here changes a bit.
//
// Built for sm_90a only (cmake/cuda.cmake compiles this file on its own, every 9.0 entry of the arch list made
// arch-specific: 90 -> 90a); for any other arch the kernels compile empty, and kvsk_gemm_wgmma_unavailable names
// why this device cannot run them, which GemmRunner turns into its one-line refusal.
//
// Tensor maps are made on the host for every launch (X's address and M change from call to call; the encoding is a
// few hundred nanoseconds of host work) through cuTensorMapEncodeTiled, reached by the runtime's driver entry
// point, so that nothing links libcuda; they travel by value as __grid_constant__ kernel parameters, so a captured
// CUDA graph keeps them.
//
// Tile shapes (registers per consumer thread: accumulators 64 per n128 block, in sequential mode 64 more for the
// running total; ptxas, sm_90a: see docs/cuda.md):
// - 64 x 128: one consumer warpgroup, 4 stages (96 KB), 2 CTAs per SM; small M, memory bound: X padded to
//   64 rows by TMA's zero fill, W streamed once, 64 KB of it in flight per CTA and 4 more chunks asked of L2
//   before the programmatic-launch wait. The k-partitions give it its CTAs: a Llama-3-8B o_proj (N 4096, 32
//   tiles) splits K = 4096 in 8 partitions of 512 for 256 CTAs, about one wave of 2 per SM on an H200.
// - 128 x 128: two consumer warpgroups of 64 x 128, 6 stages (192 KB), 1 CTA per SM; M beyond 256 (beyond 64
//   where the weight has one partition).
// - 128 x 256: two of 64 x 256 (two n128 blocks sharing A), 4 stages (192 KB); large M where the weight has one
//   k-partition (gate/up and lm_head of Llama-3-8B), or split.
// Split (a CTA per partition, sums meeting in the workspace) up to M = 16, or 64 where K >= 8192, where the tiles
// alone are at most half a wave (gemm_wgmma_layout.h: autoTile and splitWanted, with the timings behind them).
#include <cudaTypedefs.h>

#include <mutex>

#include "gemm_wgmma.cuh"

namespace kvsk {

namespace {

static_assert(wg::kTile64x128 == KVSK_GEMM_WGMMA_TILE_64x128 && wg::kTile128x128 == KVSK_GEMM_WGMMA_TILE_128x128 &&
                  wg::kTile128x256 == KVSK_GEMM_WGMMA_TILE_128x256,
              "gemm_wgmma_layout.h's tiles are the ABI's");
static_assert(wg::kChunk == 64 && wg::kRowBytes == 64 * sizeof(__nv_bfloat16), "a chunk row is one 128-byte swizzle row");

// Whether the module loaded for this device holds the sm_90a kernels (1) or their empty stand-ins (0).
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ int wgmmaCompiled = 0;
#else
__device__ int wgmmaCompiled = 1;
#endif

PFN_cuTensorMapEncodeTiled_v12000 encodeTiled() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      p = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// A row-major [rows, k] matrix of 16-bit elements as a 2-D tensor map: boxes of 64 elements by boxRows rows,
// 128-byte swizzled, zeros outside the matrix.
bool encode(CUtensorMap* map, kvsk_dtype dt, const void* base, int rows, int k, int boxRows) {
  const PFN_cuTensorMapEncodeTiled_v12000 fn = encodeTiled();
  if (!fn) return false;
  const cuuint64_t dims[2] = {(cuuint64_t)k, (cuuint64_t)rows};
  const cuuint64_t strides[1] = {(cuuint64_t)k * 2};
  const cuuint32_t box[2] = {(cuuint32_t)wg::kChunk, (cuuint32_t)boxRows};
  const cuuint32_t elementStrides[2] = {1, 1};
  return fn(map, dt == KVSK_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2,
            const_cast<void*>(base), dims, strides, box, elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <typename T, int kTile, bool kSplit>
cudaError_t launchShape(const wg::Args& a, cudaStream_t stream) {
  using S = wg::Shape<kTile>;
  auto kernel = wg::gemmWgmmaKernel<T, kTile, kSplit>;
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kSmemBytes);
  if (e != cudaSuccess) return e;
  const int tiles = a.mTiles * a.nTiles;
  return launch(kernel, dim3(kSplit ? tiles * a.parts : tiles), S::kThreads, S::kSmemBytes, stream, a);
}

template <typename T, int kTile>
cudaError_t launchTile(wg::Args a, const kvsk_gemm_wgmma_params* p, bool split, cudaStream_t stream) {
  using S = wg::Shape<kTile>;
  a.mTiles = wg::ceilDiv(a.m, S::kBM);
  a.nTiles = wg::ceilDiv(a.n, S::kBN);
  if (!encode(&a.x, p->dtype, p->x, p->m, p->k, S::kBM) || !encode(&a.w, p->dtype, p->w, p->n, p->k, S::kBN))
    return cudaErrorNotSupported;
  return split ? launchShape<T, kTile, true>(a, stream) : launchShape<T, kTile, false>(a, stream);
}

template <typename T>
cudaError_t launchGemmWgmma(const wg::Args& a, const kvsk_gemm_wgmma_params* p, wg::Choice c, cudaStream_t stream) {
  switch (c.tile) {
    case wg::kTile64x128: return launchTile<T, wg::kTile64x128>(a, p, c.split != 0, stream);
    case wg::kTile128x128: return launchTile<T, wg::kTile128x128>(a, p, c.split != 0, stream);
    case wg::kTile128x256: return launchTile<T, wg::kTile128x256>(a, p, c.split != 0, stream);
    default: return cudaErrorInvalidValue;
  }
}

// Why the current device cannot run the kernels, or null; found once per device.
const char* unavailableOnCurrentDevice() {
  constexpr int kDevices = 64;
  static std::mutex lock;
  static const char* why[kDevices];
  static bool known[kDevices];
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kDevices) return "no CUDA device";
  std::lock_guard<std::mutex> guard(lock);
  if (known[device]) return why[device];
  int major = 0, minor = 0, compiled = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  if (major != 9 || minor != 0) {
    why[device] = "wgmma runs on compute capability 9.0 only (H100, H200; its sm_90a code runs nowhere else)";
  } else if (cudaMemcpyFromSymbol(&compiled, wgmmaCompiled, sizeof(int)) != cudaSuccess || !compiled) {
    cudaGetLastError();  // a build without code for this device: not an error of the caller's next launch
    why[device] = "this build has no sm_90a code (KVSERVE_CUDA_ARCHS needs 90 or 90a)";
  } else if (!encodeTiled()) {
    why[device] = "the driver has no cuTensorMapEncodeTiled";
  } else {
    why[device] = nullptr;
  }
  known[device] = true;
  return why[device];
}

}  // namespace

}  // namespace kvsk

extern "C" const char* kvsk_gemm_wgmma_unavailable(void) { return kvsk::unavailableOnCurrentDevice(); }

extern "C" int kvsk_gemm_wgmma_supported(int n, int k, kvsk_dtype dtype) {
  return (dtype == KVSK_BF16 || dtype == KVSK_F16) && n >= 1 && k >= 8 && k % 8 == 0;
}

extern "C" int kvsk_gemm_wgmma_splits(int n, int k, int numSms) { return kvsk::wg::splitsFor(n, k, numSms); }

extern "C" kvsk_gemm_wgmma_choice kvsk_gemm_wgmma_choose(const kvsk_gemm_wgmma_params* p) {
  const kvsk::wg::Choice c = kvsk::wg::choose(p->m, p->n, p->k, p->splits, p->tile, p->split, p->workspace != nullptr,
                                              p->workspaceBytes, p->numSms);
  return kvsk_gemm_wgmma_choice{static_cast<kvsk_gemm_wgmma_tile>(c.tile), c.split};
}

extern "C" size_t kvsk_gemm_wgmma_workspace_bytes(int maxM, int n, int k, int splits, int numSms) {
  return kvsk::wg::workspaceBytes(maxM, n, k, splits, numSms);
}

extern "C" cudaError_t kvsk_gemm_wgmma(const kvsk_gemm_wgmma_params* p, cudaStream_t stream) {
  using namespace kvsk;
  if (!kvsk_gemm_wgmma_supported(p->n, p->k, p->dtype) || p->m < 1 || p->splits < 1) return cudaErrorNotSupported;
  if (p->tile < KVSK_GEMM_WGMMA_TILE_AUTO || p->tile > KVSK_GEMM_WGMMA_TILE_128x256) return cudaErrorInvalidValue;
  if ((reinterpret_cast<uintptr_t>(p->x) | reinterpret_cast<uintptr_t>(p->w)) % 16 != 0) return cudaErrorInvalidValue;
  if (unavailableOnCurrentDevice()) return cudaErrorNotSupported;
  const wg::Choice c = wg::choose(p->m, p->n, p->k, p->splits, p->tile, p->split, p->workspace != nullptr,
                                  p->workspaceBytes, p->numSms);
  wg::Args a{};
  a.y = p->y;
  a.m = p->m;
  a.n = p->n;
  a.k = p->k;
  a.chunks = wg::chunksOf(p->k);
  a.partChunks = wg::partChunksOf(p->k, p->splits);
  a.parts = wg::partsOf(p->k, p->splits);
  a.pairStores = p->n % 2 == 0 && reinterpret_cast<uintptr_t>(p->y) % 4 == 0;
  if (c.split) {
    a.counters = static_cast<int*>(p->workspace);
    a.partial = reinterpret_cast<float*>(static_cast<char*>(p->workspace) + wg::kCounterBytes);
  }
  if (p->dtype == KVSK_BF16) return launchGemmWgmma<__nv_bfloat16>(a, p, c, stream);
  return launchGemmWgmma<__half>(a, p, c, stream);
}
