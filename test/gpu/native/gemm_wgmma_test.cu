// The batch-invariant GEMM on wgmma (kernels/gemm_wgmma.cu), suite gemm-wgmma (gemm-inv's checks, for the kernel
// that runs every M on wgmma; a suite of its own for the time limit of one). On a GPU that runs it (compute
// capability 9.0, the build's sm_90a code), per dtype (bf16, f16) and weight shape (gemm-inv's: Llama-3-8B's five,
// and odd ones: K not a multiple of 64, N odd or not a multiple of 128, K = 64), X [8192, K] and W [N, K] uniform
// in [-1, 1):
// - rows 0..1023 and two far rows (4095, 8191) computed alone (M = 1, the automatic choice): the bits every other
//   call must give; sample rows of them against float64 (gemm's tolerance);
// - every M from 1 to 512 at offsets that move the rows through every position of a tile: all M x N outputs
//   bitwise those of the rows alone (compared on the device; Y poisoned with NaN bits before each call);
// - each tile shape forced, sequential and split, at M = 1, 2, 63, 64, 65, 128, 129, 256, 257, 512 and 8192 (a
//   small tile at large M skipped where it would read W from L2 more than 12 GB): bitwise the rows alone;
// - that the comparison can fail: another k-partitioning gives other bits (K >= 1024);
// - GemmRunner in batch-invariant mode with InvariantGemm::Wgmma gives the kernel's bits at every M, and leaves
//   float32 to cuBLASLt;
// - gemm_inv's 16 x 64 tile and gemv_inv (one and two n8 tiles a warp) on wgmma's k-partitions give wgmma's bits
//   at every M = 1..16, and so does GemmRunner's hybrid at M = 1, 16, 17, 512, 8192; gemv_inv's refusals;
// - a CUDA graph of two split launches (programmatic dependent launch as the engine runs them) replayed three
//   times: the eager bits (the tile counters are left at zero for the next replay).
// Elsewhere: kvsk_gemm_wgmma_unavailable names why, kvsk_gemm_wgmma refuses, and GemmRunner refuses
// InvariantGemm::Wgmma in one line; a 9.0 device the build cannot serve is a failure (the suite would test nothing).
#include <algorithm>
#include <cstring>
#include <set>

#include "gemm.h"
#include "gemm_rows_ref.h"
#include "harness.h"

namespace kt {

namespace {

struct Shape { const char* name; int N, K; };
const Shape kShapes[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336},
                         {"lm_head", 128256, 4096}, {"odd", 1000, 72}, {"odd", 193, 64}, {"odd", 4097, 4104},
                         {"odd", 96, 136}};
constexpr int kMaxM = 8192;
constexpr int kAlone = 1024;           // rows [0, kAlone) are computed alone, and the far rows below
const int kFar[] = {4095, 8191};
const int kForcedM[] = {1, 2, 63, 64, 65, 128, 129, 256, 257, 512, 8192};
struct Combo { kvsk_gemm_wgmma_tile tile; int split; const char* name; };
const Combo kCombos[] = {{KVSK_GEMM_WGMMA_TILE_64x128, 0, "64x128 sequential"},   {KVSK_GEMM_WGMMA_TILE_64x128, 1, "64x128 split"},
                         {KVSK_GEMM_WGMMA_TILE_128x128, 0, "128x128 sequential"}, {KVSK_GEMM_WGMMA_TILE_128x128, 1, "128x128 split"},
                         {KVSK_GEMM_WGMMA_TILE_128x256, 0, "128x256 sequential"}, {KVSK_GEMM_WGMMA_TILE_128x256, 1, "128x256 split"}};
const char* tileName(int t) {
  return t == KVSK_GEMM_WGMMA_TILE_64x128 ? "64x128" : t == KVSK_GEMM_WGMMA_TILE_128x128 ? "128x128" : "128x256";
}

void fillDev(void* p, kvsk_dtype dt, size_t n, uint64_t seed, cudaStream_t s) {
  kvsk_fill_params f{p, dt, (int64_t)n, seed, 1.f, 0.f};
  CK(kvsk_fill(&f, s));
}

__global__ void diffKernel(const uint16_t* a, const uint16_t* b, size_t n, unsigned long long* count) {
  unsigned long long mine = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) mine += a[i] != b[i];
  for (int o = 16; o > 0; o >>= 1) mine += __shfl_xor_sync(0xffffffffu, mine, o);
  if ((threadIdx.x & 31) == 0 && mine) atomicAdd(count, mine);
}

// How many of the n 16-bit elements at a and b (device) differ; waits for the stream.
size_t deviceDiff(const void* a, const void* b, size_t n, unsigned long long* scratch, cudaStream_t s) {
  CK(cudaMemsetAsync(scratch, 0, sizeof(*scratch), s));
  diffKernel<<<264, 256, 0, s>>>(static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), n, scratch);
  CK(cudaGetLastError());
  unsigned long long h = 0;
  CK(cudaMemcpyAsync(&h, scratch, sizeof(h), cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  return (size_t)h;
}

struct Case {
  kvsk_dtype dt;
  Shape sh;
  int numSms, splits;
  cudaStream_t stream;
  void* ws;
  size_t wsBytes;
  unsigned long long* scratch;
  kvsk_gemm_wgmma_params params(const void* x, const void* w, void* y, int m, kvsk_gemm_wgmma_tile tile, int split,
                                int splitCount) const {
    return kvsk_gemm_wgmma_params{x, w, y, m, sh.N, sh.K, dt, splitCount, tile, split, ws, wsBytes, numSms};
  }
  std::string name() const {
    return std::string(dtName(dt)) + " " + sh.name + " N" + std::to_string(sh.N) + " K" + std::to_string(sh.K);
  }
};

void shapeTests(const Case& c, const Buf& X, const Buf& W) {
  const int N = c.sh.N, K = c.sh.K;
  const size_t xRow = (size_t)K * dtSize(c.dt), yRow = (size_t)N * dtSize(c.dt);
  auto xAt = [&](int row) { return static_cast<const char*>(X.dev) + row * xRow; };
  // The rows alone: [0, kAlone), then the far rows.
  DevVec<uint8_t> alone((kAlone + std::size(kFar)) * yRow);
  CK(cudaMemsetAsync(alone.dev, 0xFF, alone.n, c.stream));
  auto aloneRow = [&](int slot) { return alone.dev + slot * yRow; };
  for (int r = 0; r < kAlone + (int)std::size(kFar); ++r) {
    const int row = r < kAlone ? r : kFar[r - kAlone];
    const kvsk_gemm_wgmma_params p = c.params(xAt(row), W.dev, aloneRow(r), 1, KVSK_GEMM_WGMMA_TILE_AUTO, -1, c.splits);
    CK(kvsk_gemm_wgmma(&p, c.stream));
  }
  CK(cudaStreamSynchronize(c.stream));
  const bool big = (size_t)N * K > (size_t)1 << 24;
  const std::vector<int> checked = big ? std::vector<int>{0, kAlone, kAlone + 1} : std::vector<int>{0, 1, 63, 64, 127, 128, 1000, kAlone, kAlone + 1};
  ErrStat ref;
  for (int slot : checked) {
    const int row = slot < kAlone ? slot : kFar[slot - kAlone];
    const ErrStat e = checkRow(X, W, rowOf(alone.dev, slot, N, c.dt), row, N, K, c.dt);
    ref.worst = std::max(ref.worst, e.worst); ref.maxAbs = std::max(ref.maxAbs, e.maxAbs); ref.bad += e.bad; ref.n += e.n;
  }
  report("gemm-wgmma", c.name() + " M=1 vs float64", (int)checked.size(), ref, "splits " + std::to_string(c.splits));

  DevVec<uint8_t> Y((size_t)kMaxM * yRow);
  // Rows [off, off + m) of a call against the rows alone; the far rows too where the call holds them.
  auto sameAsAlone = [&](int m, int off) {
    size_t bad = deviceDiff(Y.dev, aloneRow(off), (size_t)std::min(m, kAlone - off) * N, c.scratch, c.stream);
    for (int f = 0; f < (int)std::size(kFar); ++f)
      if (kFar[f] >= off && kFar[f] < off + m)
        bad += deviceDiff(Y.dev + (size_t)(kFar[f] - off) * yRow, aloneRow(kAlone + f), N, c.scratch, c.stream);
    return bad;
  };

  // Every M from 1 to 512, the automatic choice, at offsets that walk the rows through the tiles' positions.
  {
    bool same = true;
    std::string note;
    std::set<std::string> ran;
    for (int m = 1; m <= 512; ++m) {
      const int off = (m * 131 + 7) % (kAlone - m + 1);
      const kvsk_gemm_wgmma_params p = c.params(xAt(off), W.dev, Y.dev, m, KVSK_GEMM_WGMMA_TILE_AUTO, -1, c.splits);
      const kvsk_gemm_wgmma_choice ch = kvsk_gemm_wgmma_choose(&p);
      ran.insert(std::string(tileName(ch.tile)) + (ch.split ? " split" : ""));
      CK(cudaMemsetAsync(Y.dev, 0xFF, (size_t)m * yRow, c.stream));  // NaN: unwritten shows
      CK(kvsk_gemm_wgmma(&p, c.stream));
      const size_t bad = sameAsAlone(m, off);
      if (bad && same) note = "M" + std::to_string(m) + " at row " + std::to_string(off) + ": " + std::to_string(bad) + " elements differ; ";
      same = same && bad == 0;
    }
    std::string tiles;
    for (const std::string& t : ran) tiles += (tiles.empty() ? "" : ", ") + t;
    reportBool("gemm-wgmma", c.name() + " auto: every M = 1..512 == rows alone", 512, same, note + "ran " + tiles);
  }

  for (const Combo& combo : kCombos) {
    bool same = true;
    std::string note, ran;
    for (int m : kForcedM) {
      const int off = m == kMaxM ? 0 : (m * 37 + 3) % (kAlone - m + 1);
      const kvsk_gemm_wgmma_params p = c.params(xAt(off), W.dev, Y.dev, m, combo.tile, combo.split, c.splits);
      const kvsk_gemm_wgmma_choice ch = kvsk_gemm_wgmma_choose(&p);
      const std::string label = "M" + std::to_string(m);
      // One partition has no split; 128 x 256 over several partitions runs as 128 x 128 (its own combo).
      if (ch.tile != combo.tile || ch.split != combo.split) {
        ran += (ran.empty() ? "" : ", ") + label + " n/a";
        continue;
      }
      // A small tile at large M reads W once per 8 tile rows (the CTA order's groups): skip beyond 12 GB.
      const int bm = combo.tile == KVSK_GEMM_WGMMA_TILE_64x128 ? 64 : 128;
      if ((double)m / bm / 8 * N * K * 2 > 12e9) {
        ran += (ran.empty() ? "" : ", ") + label + " skipped";
        continue;
      }
      ran += (ran.empty() ? "" : ", ") + label;
      CK(cudaMemsetAsync(Y.dev, 0xFF, (size_t)m * yRow, c.stream));
      CK(kvsk_gemm_wgmma(&p, c.stream));
      const size_t bad = sameAsAlone(m, off);
      if (bad && same) note = label + ": " + std::to_string(bad) + " elements differ; ";
      same = same && bad == 0;
    }
    reportBool("gemm-wgmma", c.name() + " " + combo.name + ": rows == alone", (int)std::size(kForcedM), same, note + "ran " + ran);
  }

  // The bits are sensitive to the k-reduction: another partitioning changes some of them.
  const int chunks = (K + 63) / 64;
  if (K >= 1024) {
    const int other = c.splits > 1 ? 1 : std::min(4, chunks);
    const kvsk_gemm_wgmma_params p = c.params(xAt(0), W.dev, Y.dev, 1, KVSK_GEMM_WGMMA_TILE_AUTO, -1, other);
    CK(kvsk_gemm_wgmma(&p, c.stream));
    reportBool("gemm-wgmma", c.name() + " splits " + std::to_string(other) + " != splits " + std::to_string(c.splits) +
                                 " (the bitwise checks can fail)", 1, deviceDiff(Y.dev, aloneRow(0), N, c.scratch, c.stream) > 0, "");
  }

  // A GemmRunner in batch-invariant mode with `which`: its k-partitions are the kernel's, and its rows at each M
  // (centred on row `centre`; kMaxM from row 0) are the rows alone. Its plan's description and what differs: `note`.
  const kvs::DType kd = static_cast<kvs::DType>(c.dt);
  auto runnerMatches = [&](kvs::cuda::InvariantGemm which, std::initializer_list<int> ms, int centre, std::string& note) {
    kvs::cuda::GemmRunner gemm(c.stream, kMaxM, kvs::cuda::GemmMode::BatchInvariant, 0, 32u << 20, which);
    gemm.plan(N, K, kd, kd);
    bool same = gemm.ownSplits(N, K, kd, kd) == c.splits;
    note = gemm.describe(N, K, kd, kd);
    for (const int m : ms) {
      const int off = m == kMaxM ? 0 : centre - m / 2;
      CK(cudaMemsetAsync(Y.dev, 0xFF, (size_t)m * yRow, c.stream));
      gemm.run(xAt(off), W.dev, Y.dev, m, N, K, kd, kd);
      if (const size_t bad = sameAsAlone(m, off)) {
        same = false;
        note += "; M" + std::to_string(m) + ": " + std::to_string(bad) + " differ";
      }
    }
    return same;
  };
  std::string note;
  const bool same = runnerMatches(kvs::cuda::InvariantGemm::Wgmma, {1, 37, 512, kMaxM}, 980, note);
  reportBool("gemm-wgmma", c.name() + " GemmRunner (batch-invariant, wgmma) == kernel at M=1/37/512/8192", 4, same, note);

  // gemm_inv's 16 x 64 tile on wgmma's k-partitions: the same bits as wgmma at M = 1..16? InvariantGemm::Hybrid
  // (gemm_inv up to kHybridInvMaxM rows, wgmma beyond) is batch-invariant only if they are.
  if (kvsk_gemm_inv_supported(N, K, c.dt)) {
    bool equal = true;
    std::string diffNote;
    for (int m = 1; m <= kvs::cuda::kHybridInvMaxM; ++m) {
      const int off = (m * 53 + 11) % (kAlone - m + 1);
      const kvsk_gemm_inv_params p{xAt(off), W.dev, Y.dev, m, N, K, c.dt, c.splits, KVSK_GEMM_INV_TILE_16x64, -1,
                                   c.ws, c.wsBytes, c.numSms};
      CK(cudaMemsetAsync(Y.dev, 0xFF, (size_t)m * yRow, c.stream));
      CK(kvsk_gemm_inv(&p, c.stream));
      if (const size_t bad = sameAsAlone(m, off)) {
        if (equal) diffNote = "M" + std::to_string(m) + ": " + std::to_string(bad) + " of " + std::to_string((size_t)m * N) + " differ";
        equal = false;
      }
    }
    reportBool("gemm-wgmma", c.name() + " gemm_inv 16x64 on wgmma's splits == gemm_wgmma bits at M=1..16", 16, equal, diffNote);

    // gemv_inv (gemm_inv's reduction with W streamed into registers, the hybrid's kernel up to M = 16): the same
    // bits at M = 1..16, with one and two n8 tiles a warp (walking offsets: rows of X away from row 0), the three
    // kvsk_pdl_trigger values by turns.
    for (const int nt : {1, 2}) {
      bool gequal = kvsk_gemv_inv_supported(1, N, K, c.dt, c.splits) != 0;
      std::string gnote = gequal ? "" : "not supported";
      for (int m = 1; gequal && m <= KVSK_GEMV_INV_MAX_M; ++m) {
        const int off = (m * 37 + 5) % (kAlone - m + 1);
        const kvsk_gemv_inv_params p{xAt(off), W.dev, Y.dev, m, N, K, c.dt, c.splits, nt, m % 3};
        CK(cudaMemsetAsync(Y.dev, 0xFF, (size_t)m * yRow, c.stream));
        CK(kvsk_gemv_inv(&p, c.stream));
        if (const size_t bad = sameAsAlone(m, off)) {
          gnote = "M" + std::to_string(m) + ": " + std::to_string(bad) + " of " + std::to_string((size_t)m * N) + " differ";
          gequal = false;
        }
      }
      reportBool("gemm-wgmma", c.name() + " gemv_inv (" + std::to_string(nt) + " n8 tiles a warp) on wgmma's splits == gemm_wgmma bits at M=1..16",
                 16, gequal, gnote);
    }

    std::string hnote;
    const bool hsame = runnerMatches(kvs::cuda::InvariantGemm::Hybrid, {1, 16, 17, 512, kMaxM}, 700, hnote);
    reportBool("gemm-wgmma", c.name() + " GemmRunner (batch-invariant, hybrid) == wgmma kernel at M=1/16/17/512/8192", 5, hsame, hnote);
  }
}

// Two split launches (M = 1 and M = 63, o_proj's shape; the split forced, as the automatic choice no longer splits
// o_proj at M = 63) captured in a graph and replayed: the eager bits.
void graphTest(cudaStream_t stream, int numSms) {
  const int N = 4096, K = 4096, M = 64;
  const kvsk_dtype dt = KVSK_BF16;
  const int splits = kvsk_gemm_wgmma_splits(N, K, numSms);
  const size_t wsBytes = 64 * 1024 + sizeof(float) * (size_t)splits * M * N;  // counters, then a forced split's sums
  DevVec<uint8_t> ws(wsBytes), x((size_t)M * K * 2), w((size_t)N * K * 2), y((size_t)M * N * 2), yg((size_t)M * N * 2);
  CK(cudaMemset(ws.dev, 0, wsBytes));
  fillDev(x.dev, dt, (size_t)M * K, 41, stream);
  fillDev(w.dev, dt, (size_t)N * K, 42, stream);
  CK(cudaStreamSynchronize(stream));  // W is read before the programmatic-launch wait: filled for sure
  auto params = [&](void* out, int m) {
    return kvsk_gemm_wgmma_params{x.dev, w.dev, static_cast<char*>(out) + (m == 1 ? 0 : (size_t)N * 2), m, N, K, dt, splits,
                                  KVSK_GEMM_WGMMA_TILE_AUTO, 1, ws.dev, wsBytes, numSms};  // split where it can
  };
  // Row 0 of out: x row 0 alone; rows 1..63: x rows 0..62 as one call.
  auto both = [&](void* out) {
    for (int m : {1, M - 1}) {
      const kvsk_gemm_wgmma_params p = params(out, m);
      CK(kvsk_gemm_wgmma(&p, stream));
    }
  };
  both(y.dev);
  CK(cudaStreamSynchronize(stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  both(yg.dev);
  CK(cudaStreamEndCapture(stream, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  bool same = true;
  for (int rep = 0; rep < 3; ++rep) {
    CK(cudaMemsetAsync(yg.dev, 0xFF, (size_t)M * N * 2, stream));
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaStreamSynchronize(stream));
    same = same && yg.down() == y.down();
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  const kvsk_gemm_wgmma_params p1 = params(y.dev, 1), p63 = params(y.dev, M - 1);
  const bool split = kvsk_gemm_wgmma_choose(&p1).split && kvsk_gemm_wgmma_choose(&p63).split;
  reportBool("gemm-wgmma", "CUDA graph of two split launches, replayed 3 times == eager", 3, same && split,
             split ? "" : "a launch did not split: the graph test would not test the counters");
}

// What kvsk_gemv_inv refuses: M beyond KVSK_GEMV_INV_MAX_M, more than 16 k-partitions, K not a multiple of 8,
// float32, a tilesPerWarp other than 0, 1, 2, a trigger outside kvsk_pdl_trigger, a misaligned x.
void gemvInvRefusals(cudaStream_t stream) {
  DevVec<uint8_t> buf(4096 * 2 + 64);
  char* base = reinterpret_cast<char*>(buf.dev);
  auto call = [&](int m, int k, kvsk_dtype dt, int splits, int nt, const void* x, int trigger = 0) {
    const kvsk_gemv_inv_params p{x, base, base, m, 8, k, dt, splits, nt, trigger};
    return kvsk_gemv_inv(&p, stream);
  };
  std::string why;
  if (call(KVSK_GEMV_INV_MAX_M + 1, 64, KVSK_BF16, 1, 0, base) != cudaErrorNotSupported) why += "M 17 accepted; ";
  if (call(1, 64 * 17, KVSK_BF16, 17, 0, base) != cudaErrorNotSupported) why += "17 partitions accepted; ";
  if (call(1, 60, KVSK_BF16, 1, 0, base) != cudaErrorNotSupported) why += "K 60 accepted; ";
  if (call(1, 64, KVSK_F32, 1, 0, base) != cudaErrorNotSupported) why += "float32 accepted; ";
  if (call(1, 64, KVSK_BF16, 1, 3, base) != cudaErrorInvalidValue) why += "3 tiles a warp accepted; ";
  if (call(1, 64, KVSK_BF16, 1, 4, base) != cudaErrorInvalidValue) why += "4 tiles a warp accepted; ";
  if (call(1, 64, KVSK_BF16, 1, 0, base + 8) != cudaErrorInvalidValue) why += "misaligned x accepted; ";
  if (call(1, 64, KVSK_BF16, 1, 0, base, 3) != cudaErrorInvalidValue) why += "trigger 3 accepted; ";
  if (call(1, 64, KVSK_BF16, 1, 0, base, -1) != cudaErrorInvalidValue) why += "trigger -1 accepted; ";
  cudaGetLastError();
  reportBool("gemm-wgmma", "gemv_inv refuses M 17, 17 partitions, K 60, float32, 3 or 4 tiles a warp, trigger 3 or -1, a misaligned x", 9,
             why.empty(), why);
}

// Where the kernel cannot run: the refusals. Returns whether it runs here.
bool availability(cudaStream_t stream) {
  int device = 0, major = 0, minor = 0;
  CK(cudaGetDevice(&device));
  CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  CK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  const char* why = kvsk_gemm_wgmma_unavailable();
  if (!why) return true;
  if (major == 9 && minor == 0) {  // a Hopper GPU the build cannot serve: nothing below would be tested
    reportBool("gemm-wgmma", "compute capability 9.0: the kernel runs", 1, false, why);
    return false;
  }
  std::string message;
  try {
    kvs::cuda::GemmRunner gemm(stream, 64, kvs::cuda::GemmMode::BatchInvariant, 0, 32u << 20, kvs::cuda::InvariantGemm::Wgmma);
  } catch (const std::exception& e) {
    message = e.what();
  }
  const bool oneLine = !message.empty() && message.find('\n') == std::string::npos && message.find(why) != std::string::npos;
  reportBool("gemm-wgmma", "compute capability " + std::to_string(major) + "." + std::to_string(minor) +
                               ": GemmRunner refuses InvariantGemm::Wgmma in one line", 1, oneLine, message);
  const kvsk_gemm_wgmma_params p{nullptr, nullptr, nullptr, 1, 64, 64, KVSK_BF16, 1, KVSK_GEMM_WGMMA_TILE_AUTO, -1, nullptr, 0, 1};
  reportBool("gemm-wgmma", "kvsk_gemm_wgmma refuses where it cannot run", 1, kvsk_gemm_wgmma(&p, stream) == cudaErrorNotSupported, why);
  return false;
}

}  // namespace

void gemmWgmmaTests() {
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  gemvInvRefusals(stream);
  if (!availability(stream)) {
    CK(cudaStreamDestroy(stream));
    return;
  }
  int device = 0, numSms = 0;
  CK(cudaGetDevice(&device));
  CK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, device));
  unsigned long long* scratch = nullptr;
  CK(cudaMalloc(&scratch, sizeof(*scratch)));
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (const Shape& sh : kShapes) {
      Case c{dt, sh, numSms, kvsk_gemm_wgmma_splits(sh.N, sh.K, numSms), stream, nullptr, 0, scratch};
      try {
        // Workspace for every call split at up to kMaxM rows (forced splits at large M too); counters first.
        c.wsBytes = 64 * 1024 + (c.splits > 1 ? sizeof(float) * (size_t)c.splits * kMaxM * sh.N : 0);
        CK(cudaMalloc(&c.ws, c.wsBytes));
        CK(cudaMemset(c.ws, 0, c.wsBytes));
        Buf X(dt, (size_t)kMaxM * sh.K), W(dt, (size_t)sh.N * sh.K);
        fillDev(X.dev, dt, X.n, 3000 + sh.N, stream);
        fillDev(W.dev, dt, W.n, 4000 + sh.K, stream);
        CK(cudaStreamSynchronize(stream));
        X.down();
        W.down();
        shapeTests(c, X, W);
      } catch (const std::exception& e) {
        reportBool("gemm-wgmma", c.name(), 0, false, e.what());
      }
      if (c.ws) cudaFree(c.ws);
    }
  try {
    graphTest(stream, numSms);
  } catch (const std::exception& e) {
    reportBool("gemm-wgmma", "CUDA graph", 0, false, e.what());
  }
  // float32 through the wgmma runner: cuBLASLt's invariant algorithm (our kernel is bf16/f16 only).
  kvs::cuda::GemmRunner gemm(stream, 64, kvs::cuda::GemmMode::BatchInvariant, 0, 32u << 20, kvs::cuda::InvariantGemm::Wgmma);
  reportBool("gemm-wgmma", "GemmRunner wgmma: float32 stays on cuBLASLt, bf16 runs ours", 1,
             gemm.ownSplits(512, 512, kvs::DType::F32, kvs::DType::F32) == 0 &&
                 gemm.ownSplits(512, 512, kvs::DType::BF16, kvs::DType::BF16) > 0,
             gemm.describe(512, 512, kvs::DType::F32, kvs::DType::F32) + "; bf16: " +
                 gemm.describe(512, 512, kvs::DType::BF16, kvs::DType::BF16));
  cudaFree(scratch);
  CK(cudaStreamDestroy(stream));
}

}  // namespace kt
