// The batch-invariant GEMM (kernels/gemm_inv.cu), suite gemm-inv: per dtype (bf16, f16) and weight shape
// (Llama-3-8B's five, and odd ones: K not a multiple of 64, N odd, K = 64), with X [8192, K] and W [N, K]
// uniform in [-1, 1):
// - vs float64: rows computed alone (M = 1), tolerance as gemm_test.cu's;
// - bitwise: sample rows (tile edges 15/16, 63/64, 127/128 and beyond) computed alone are the same bits as in
//   calls of M = 37, 512 and 8192 at other offsets (so at other positions in their tiles), for the automatic
//   choice and for every tile shape forced, sequential and split;
// - that the comparison can fail: the same row with another k-partitioning differs (K >= 1024);
// - GemmRunner in batch-invariant mode with InvariantGemm::Own gives the kernel's bits at every M (and leaves
//   float32 to cuBLASLt);
// - a CUDA graph of split launches (programmatic dependent launch as the engine runs them) replayed three
//   times: the same bits as eager launches (the tile counters are left at zero for the next replay).
#include <algorithm>
#include <cstring>

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
// Rows checked: tile edges of the 16-, 64- and 128-row tiles, and far ones.
const std::vector<int> kRows = {0, 1, 15, 16, 36, 63, 64, 100, 127, 128, 511, 1000, 4095, 8191};
struct Call { int m, offset; };  // rows [offset, offset + m) of X as one call
const Call kCalls[] = {{1, 8191}, {37, 0}, {37, 980}, {512, 0}, {512, 3700}, {8192, 0}};
struct Combo { kvsk_gemm_inv_tile tile; int split; const char* name; };
const Combo kCombos[] = {{KVSK_GEMM_INV_TILE_AUTO, -1, "auto"},
                         {KVSK_GEMM_INV_TILE_16x64, 0, "16x64 sequential"},   {KVSK_GEMM_INV_TILE_16x64, 1, "16x64 split"},
                         {KVSK_GEMM_INV_TILE_64x128, 0, "64x128 sequential"}, {KVSK_GEMM_INV_TILE_64x128, 1, "64x128 split"},
                         {KVSK_GEMM_INV_TILE_128x128, 0, "128x128 sequential"}, {KVSK_GEMM_INV_TILE_128x128, 1, "128x128 split"}};
const char* tileName(kvsk_gemm_inv_tile t) {
  return t == KVSK_GEMM_INV_TILE_16x64 ? "16x64" : t == KVSK_GEMM_INV_TILE_64x128 ? "64x128" : "128x128";
}

void fillDev(void* p, kvsk_dtype dt, size_t n, uint64_t seed, cudaStream_t s) {
  kvsk_fill_params f{p, dt, (int64_t)n, seed, 1.f, 0.f};
  CK(kvsk_fill(&f, s));
}

// Row r of Y (device, [*, N]) as bytes.
struct Case {
  kvsk_dtype dt;
  Shape sh;
  int numSms, splits;
  cudaStream_t stream;
  void* ws;
  size_t wsBytes;
  kvsk_gemm_inv_params params(const void* x, const void* w, void* y, int m, kvsk_gemm_inv_tile tile, int split, int splits) const {
    return kvsk_gemm_inv_params{x, w, y, m, sh.N, sh.K, dt, splits, tile, split, ws, wsBytes, numSms};
  }
  std::string name() const {
    return std::string(dtName(dt)) + " " + sh.name + " N" + std::to_string(sh.N) + " K" + std::to_string(sh.K);
  }
};

void shapeTests(const Case& c, const Buf& X, const Buf& W) {
  const int N = c.sh.N, K = c.sh.K;
  const size_t xRow = (size_t)K * dtSize(c.dt);
  DevVec<uint8_t> Y((size_t)kMaxM * N * dtSize(c.dt));
  auto xAt = [&](int row) { return static_cast<const char*>(X.dev) + row * xRow; };
  // Every sample row alone, automatic choice: the bits the other calls must reproduce.
  std::vector<std::vector<uint8_t>> alone;
  for (int r : kRows) {
    const kvsk_gemm_inv_params p = c.params(xAt(r), W.dev, Y.dev, 1, KVSK_GEMM_INV_TILE_AUTO, -1, c.splits);
    CK(cudaMemsetAsync(Y.dev, 0xFF, (size_t)N * dtSize(c.dt), c.stream));
    CK(kvsk_gemm_inv(&p, c.stream));
    CK(cudaStreamSynchronize(c.stream));
    alone.push_back(rowOf(Y.dev, 0, N, c.dt));
  }
  const bool big = (size_t)N * K > (size_t)1 << 24;
  ErrStat ref;
  for (size_t i = 0; i < kRows.size(); ++i)
    if (!big || kRows[i] == 0 || kRows[i] == 4095 || kRows[i] == 8191) {
      const ErrStat e = checkRow(X, W, alone[i], kRows[i], N, K, c.dt);
      ref.worst = std::max(ref.worst, e.worst); ref.maxAbs = std::max(ref.maxAbs, e.maxAbs); ref.bad += e.bad; ref.n += e.n;
    }
  report("gemm-inv", c.name() + " M=1 vs float64", big ? 3 : (int)kRows.size(), ref,
         "splits " + std::to_string(c.splits));

  for (const Combo& combo : kCombos) {
    bool same = true;
    std::string note, ran;
    for (const Call& call : kCalls) {
      const kvsk_gemm_inv_params p = c.params(xAt(call.offset), W.dev, Y.dev, call.m, combo.tile, combo.split, c.splits);
      const kvsk_gemm_inv_choice ch = kvsk_gemm_inv_choose(&p);
      // A small tile forced at large M reads W once per 8 tile rows (the CTA order's groups): skip beyond 12 GB.
      const int bm = ch.tile == KVSK_GEMM_INV_TILE_16x64 ? 16 : ch.tile == KVSK_GEMM_INV_TILE_64x128 ? 64 : 128;
      if ((double)call.m / bm / 8 * N * K * 2 > 12e9) {
        ran += std::string(ran.empty() ? "" : ", ") + "M" + std::to_string(call.m) + " skipped";
        continue;
      }
      ran += std::string(ran.empty() ? "" : ", ") + "M" + std::to_string(call.m) + " " + tileName(ch.tile) + (ch.split ? " split" : "");
      CK(cudaMemsetAsync(Y.dev, 0xFF, (size_t)call.m * N * dtSize(c.dt), c.stream));  // NaN: unwritten shows
      CK(kvsk_gemm_inv(&p, c.stream));
      CK(cudaStreamSynchronize(c.stream));
      for (size_t i = 0; i < kRows.size(); ++i) {
        const int at = kRows[i] - call.offset;
        if (at < 0 || at >= call.m) continue;
        if (rowOf(Y.dev, at, N, c.dt) != alone[i]) {
          same = false;
          note += " row " + std::to_string(kRows[i]) + " at " + std::to_string(at) + " of M" + std::to_string(call.m) + " differs;";
        }
      }
    }
    reportBool("gemm-inv", c.name() + " " + combo.name + ": rows in M=1/37/512/8192 calls == alone", (int)std::size(kCalls),
               same, (note.empty() ? "" : note + " ") + "ran " + ran);
  }

  // The bits are sensitive to the k-reduction: another partitioning changes some of them.
  const int chunks = (K + 63) / 64;
  if (K >= 1024) {
    const int other = c.splits > 1 ? 1 : std::min(4, chunks);
    const kvsk_gemm_inv_params p = c.params(xAt(kRows[0]), W.dev, Y.dev, 1, KVSK_GEMM_INV_TILE_AUTO, -1, other);
    CK(kvsk_gemm_inv(&p, c.stream));
    CK(cudaStreamSynchronize(c.stream));
    reportBool("gemm-inv", c.name() + " splits " + std::to_string(other) + " != splits " + std::to_string(c.splits) +
                               " (the bitwise checks can fail)", 1, rowOf(Y.dev, 0, N, c.dt) != alone[0], "");
  }

  // GemmRunner, batch-invariant mode with our GEMM: the kernel's bits at every M.
  kvs::cuda::GemmRunner gemm(c.stream, kMaxM, kvs::cuda::GemmMode::BatchInvariant, 0, 32u << 20, kvs::cuda::InvariantGemm::Own);
  const kvs::DType kd = static_cast<kvs::DType>(c.dt);
  gemm.plan(N, K, kd, kd);
  bool same = gemm.ownSplits(N, K, kd, kd) == c.splits;
  std::string note = gemm.describe(N, K, kd, kd);
  for (const Call& call : kCalls) {
    gemm.run(xAt(call.offset), W.dev, Y.dev, call.m, N, K, kd, kd);
    CK(cudaStreamSynchronize(c.stream));
    for (size_t i = 0; i < kRows.size(); ++i) {
      const int at = kRows[i] - call.offset;
      if (at >= 0 && at < call.m && rowOf(Y.dev, at, N, c.dt) != alone[i]) {
        same = false;
        note += "; row " + std::to_string(kRows[i]) + " of M" + std::to_string(call.m) + " differs";
      }
    }
  }
  reportBool("gemm-inv", c.name() + " GemmRunner (batch-invariant, own) == kernel at M=1/37/512/8192", (int)std::size(kCalls), same, note);
}

// Two split launches (M = 1 and M = 64, o_proj's shape) captured in a graph and replayed: eager bits.
void graphTest(cudaStream_t stream, int numSms, void* ws, size_t wsBytes) {
  const int N = 4096, K = 4096, M = 64;
  const kvsk_dtype dt = KVSK_BF16;
  const int splits = kvsk_gemm_inv_splits(N, K, numSms);
  DevVec<uint8_t> x((size_t)M * K * 2), w((size_t)N * K * 2), y((size_t)M * N * 2), yg((size_t)M * N * 2);
  fillDev(x.dev, dt, (size_t)M * K, 41, stream);
  fillDev(w.dev, dt, (size_t)N * K, 42, stream);
  CK(cudaStreamSynchronize(stream));  // W is read before the programmatic-launch wait: filled for sure
  // Row 0 of out: x row 0 alone (16x64 split); rows 1..63: x rows 0..62 as one call (64x128 split).
  auto both = [&](void* out) {
    for (int m : {1, M - 1}) {
      const kvsk_gemm_inv_params p{x.dev, w.dev, static_cast<char*>(out) + (m == 1 ? 0 : (size_t)N * 2), m,
                                   N, K, dt, splits, KVSK_GEMM_INV_TILE_AUTO, -1, ws, wsBytes, numSms};
      CK(kvsk_gemm_inv(&p, stream));
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
  const kvsk_gemm_inv_params p1{x.dev, w.dev, y.dev, 1, N, K, dt, splits, KVSK_GEMM_INV_TILE_AUTO, -1, ws, wsBytes, numSms};
  const kvsk_gemm_inv_params p63{x.dev, w.dev, y.dev, M - 1, N, K, dt, splits, KVSK_GEMM_INV_TILE_AUTO, -1, ws, wsBytes, numSms};
  const bool split = kvsk_gemm_inv_choose(&p1).split && kvsk_gemm_inv_choose(&p63).split;
  reportBool("gemm-inv", "CUDA graph of two split launches, replayed 3 times == eager", 3, same && split,
             split ? "" : "a launch did not split: the graph test would not test the counters");
}

}  // namespace

void gemmInvTests() {
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  int device = 0, numSms = 0;
  CK(cudaGetDevice(&device));
  CK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, device));
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (const Shape& sh : kShapes) {
      Case c{dt, sh, numSms, kvsk_gemm_inv_splits(sh.N, sh.K, numSms), stream, nullptr, 0};
      try {
        // Workspace for every call split at up to kMaxM rows (forced splits at large M too); counters first.
        c.wsBytes = 64 * 1024 + (c.splits > 1 ? sizeof(float) * (size_t)c.splits * kMaxM * sh.N : 0);
        CK(cudaMalloc(&c.ws, c.wsBytes));
        CK(cudaMemset(c.ws, 0, c.wsBytes));
        Buf X(dt, (size_t)kMaxM * sh.K), W(dt, (size_t)sh.N * sh.K);
        fillDev(X.dev, dt, X.n, 1000 + sh.N, stream);
        fillDev(W.dev, dt, W.n, 2000 + sh.K, stream);
        CK(cudaStreamSynchronize(stream));
        X.down();
        W.down();
        shapeTests(c, X, W);
      } catch (const std::exception& e) {
        reportBool("gemm-inv", c.name(), 0, false, e.what());
      }
      if (c.ws) cudaFree(c.ws);
    }
  try {
    const size_t wsBytes = kvsk_gemm_inv_workspace_bytes(64, 4096, 4096, kvsk_gemm_inv_splits(4096, 4096, numSms), numSms);
    void* ws = nullptr;
    CK(cudaMalloc(&ws, std::max<size_t>(wsBytes, 16)));
    CK(cudaMemset(ws, 0, std::max<size_t>(wsBytes, 16)));
    graphTest(stream, numSms, ws, wsBytes);
    cudaFree(ws);
  } catch (const std::exception& e) {
    reportBool("gemm-inv", "CUDA graph", 0, false, e.what());
  }
  // float32 through the own runner: cuBLASLt's invariant algorithm (our kernel is bf16/f16 only).
  kvs::cuda::GemmRunner gemm(stream, 64, kvs::cuda::GemmMode::BatchInvariant, 0, 32u << 20, kvs::cuda::InvariantGemm::Own);
  reportBool("gemm-inv", "GemmRunner own: float32 stays on cuBLASLt, bf16 runs ours", 1,
             gemm.ownSplits(512, 512, kvs::DType::F32, kvs::DType::F32) == 0 &&
                 gemm.ownSplits(512, 512, kvs::DType::BF16, kvs::DType::BF16) > 0,
             gemm.describe(512, 512, kvs::DType::F32, kvs::DType::F32));
  CK(cudaStreamDestroy(stream));
}

}  // namespace kt
