// The even GEMV (kernels/gemv_even.cu, kvsk_gemv_even), suite gemv-even, bf16 and f16, X [8, K] and W [N, K]
// uniform in [-1, 1), on Llama-3-8B's shapes and odd ones (N 1, 7, 1000, 4097; K 8, 64, 72, 14336), each at the
// one-wave grid and at grids chosen to cut rows mid-row, only at row starts, or into pieces shorter than a row
// (and more CTAs than chunks: clamped):
// - vs float64 at M = 8: every row a boundary cuts, and a sample of the others (gemm_test.cu's tolerance);
// - bitwise: rows at M = 1..7 and x row 5 alone are the M = 8 call's rows; a second launch gives the same bits
//   (the arrival counters were left at zero); rows no boundary cuts are kvsk_gemv's (the plain kernel's order);
// - a CUDA graph of three launches of other shapes and grids on one workspace (programmatic dependent launch
//   as the engine runs them), replayed three times: the eager bits;
// - GemmRunner with KVSERVE_GEMV_EVEN=1: the even GEMV among the timed candidates; a plan with it for M <= 8
//   imported, run (the kernel's bits), gemvRows 0 there, exported again as even; with KVSERVE_GEMV_EVEN=0 the
//   same plan is refused in one line naming it; unset, the even GEMV is a candidate; KVSERVE_GEMV_EVEN=2 is
//   refused when the runner is made.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "gemm.h"
#include "harness.h"

namespace kt {

namespace {

constexpr int kM = KVSK_GEMV_MAX_M;

struct Shape { const char* name; int N, K; };
const Shape kShapes[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096},    {"gate_up", 28672, 4096}, {"down", 4096, 14336},
                         {"lm_head", 128256, 4096}, {"odd", 1, 8}, {"odd", 1, 14336},      {"odd", 7, 64},
                         {"odd", 7, 14336},   {"odd", 1000, 72},   {"odd", 4097, 8},         {"odd", 4097, 64},
                         {"odd", 4097, 14336}};

int64_t pieceStart(int g, int G, int64_t chunks) { return (int64_t)g * chunks / G; }  // as the kernel's

// Which rows the piece boundaries of grid G cut (a boundary inside a row), for chunks-per-row cpr.
std::vector<char> cutRows(int N, int cpr, int G) {
  std::vector<char> cut(N, 0);
  const int64_t chunks = (int64_t)N * cpr;
  for (int g = 1; g < G; ++g) {
    const int64_t c = pieceStart(g, G, chunks);
    if (c % cpr) cut[c / cpr] = 1;
  }
  return cut;
}

struct Grid { const char* what; int ctas; };

// The grids of a shape: one wave, then mid-row cuts (an odd count that is not a wave), row starts only (one row
// per CTA, or N / 7), pieces shorter than a row, more CTAs than chunks.
std::vector<Grid> gridsFor(int N, int K, int wave) {
  const int64_t chunks = (int64_t)N * (K / 8);
  std::vector<Grid> g = {{"one wave", wave}, {"1 CTA", 1}};
  if (chunks > 1001) g.push_back({"1001 CTAs (mid-row)", 1001});
  if (N % 7 == 0 && N > 7) g.push_back({"N/7 CTAs (row starts)", N / 7});
  if (N <= 8192 && N > 1) g.push_back({"N CTAs (row starts)", N});
  if (N <= 7 && K >= 64) g.push_back({"9N CTAs (shorter than a row)", 9 * N});
  if (chunks <= 100000) g.push_back({"2x chunks (clamped)", (int)std::min<int64_t>(2 * chunks, 1 << 30)});
  return g;
}

std::vector<uint8_t> down(const void* dev, size_t bytes) {
  std::vector<uint8_t> h(bytes);
  CK(cudaMemcpy(h.data(), dev, bytes, cudaMemcpyDeviceToHost));
  return h;
}

struct Case {
  kvsk_dtype dt;
  Shape sh;
  cudaStream_t stream;
  void* ws;
  size_t wsBytes;
  std::string name() const { return std::string(dtName(dt)) + " " + sh.name + " N" + std::to_string(sh.N) + " K" + std::to_string(sh.K); }
  size_t rowBytes() const { return (size_t)sh.N * dtSize(dt); }
  // Y [m, N] = X W^T with the even GEMV at ctas, Y poisoned first.
  void even(const void* X, const void* W, void* Y, int m, int ctas) const {
    CK(cudaMemsetAsync(Y, 0xFF, m * rowBytes(), stream));
    const kvsk_gemv_even_params p{X, W, Y, m, sh.N, sh.K, dt, ctas, ws, wsBytes};
    CK(kvsk_gemv_even(&p, stream));
    CK(cudaStreamSynchronize(stream));
  }
};

// Rows `rows` of Y [kM, N] (host bytes) against float64 of X (host) and W (device, read row by row).
ErrStat checkRows(const Case& c, const Buf& X, const void* W, const std::vector<uint8_t>& Y, const std::vector<int>& rows) {
  const int K = c.sh.K, N = c.sh.N;
  const double scale = std::sqrt((double)K) / 3.0;
  const double atol = (c.dt == KVSK_BF16 ? 8e-3 : 2e-3) * scale, rtol = c.dt == KVSK_BF16 ? 8e-3 : 2e-3;
  std::vector<std::vector<uint8_t>> wRows(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    wRows[i].resize((size_t)K * dtSize(c.dt));
    CK(cudaMemcpy(wRows[i].data(), static_cast<const char*>(W) + (size_t)rows[i] * wRows[i].size(), wRows[i].size(),
                  cudaMemcpyDeviceToHost));
  }
  std::vector<double> x(X.n);
  for (size_t i = 0; i < X.n; ++i) x[i] = X.get(i);
  std::vector<ErrStat> per(rows.size());
  parallelFor((int)rows.size(), [&](int i) {
    std::vector<double> w(K);
    for (int k = 0; k < K; ++k) w[k] = load(c.dt, wRows[i].data(), k);
    for (int m = 0; m < kM; ++m) {
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += x[(size_t)m * K + k] * w[k];
      per[i].add(load(c.dt, Y.data(), (size_t)m * N + rows[i]), acc, atol, rtol);
    }
  });
  ErrStat st;
  for (auto& e : per) { st.worst = std::max(st.worst, e.worst); st.maxAbs = std::max(st.maxAbs, e.maxAbs); st.bad += e.bad; st.n += e.n; }
  return st;
}

void gridTests(const Case& c, const Buf& X, const void* W, const Grid& grid, const std::vector<uint8_t>& plain) {
  const int N = c.sh.N, K = c.sh.K, cpr = K / 8;
  const int ctas = (int)std::min<int64_t>(grid.ctas, (int64_t)N * cpr);  // what the launcher runs
  const std::string name = c.name() + " " + grid.what + " (" + std::to_string(ctas) + ")";
  const size_t rowBytes = c.rowBytes();
  DevVec<uint8_t> Y(kM * rowBytes);
  c.even(X.dev, W, Y.dev, kM, grid.ctas);
  const std::vector<uint8_t> y8 = down(Y.dev, kM * rowBytes);

  // vs float64: every cut row (up to 600 of them) and 100 others spread over N.
  const std::vector<char> cut = cutRows(N, cpr, ctas);
  std::vector<int> rows;
  int cuts = 0;
  for (int n = 0; n < N; ++n) cuts += cut[n];
  for (int n = 0, taken = 0; n < N && taken < 600; ++n)
    if (cut[n]) { rows.push_back(n); ++taken; }
  for (int i = 0; i < 100 && i < N; ++i) rows.push_back((int)((int64_t)i * (N - 1) / std::max(1, std::min(99, N - 1))));
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  report("gemv-even", name + " M=8 vs float64", (int)rows.size() * kM, checkRows(c, X, W, y8, rows),
         std::to_string(cuts) + " cut rows");
  if (std::strstr(grid.what, "row starts"))  // the test's own arithmetic: such a grid cuts nothing
    reportBool("gemv-even", name + " cuts no row", 1, cuts == 0, std::to_string(cuts) + " cut rows");

  // The same bits at every M, for x row 5 alone, and in a second launch (the counters were reset).
  bool same = true;
  std::string note;
  for (int m = 1; m < kM; ++m) {
    c.even(X.dev, W, Y.dev, m, grid.ctas);
    if (down(Y.dev, m * rowBytes) != std::vector<uint8_t>(y8.begin(), y8.begin() + m * rowBytes)) {
      same = false;
      note += " M" + std::to_string(m) + " differs;";
    }
  }
  c.even(static_cast<const char*>(X.dev) + (size_t)5 * K * dtSize(c.dt), W, Y.dev, 1, grid.ctas);
  if (down(Y.dev, rowBytes) != std::vector<uint8_t>(y8.begin() + 5 * rowBytes, y8.begin() + 6 * rowBytes)) {
    same = false;
    note += " x row 5 alone differs;";
  }
  c.even(X.dev, W, Y.dev, kM, grid.ctas);
  if (down(Y.dev, kM * rowBytes) != y8) {
    same = false;
    note += " a second launch differs;";
  }
  reportBool("gemv-even", name + " rows at M=1..7, x row 5 alone, a second launch == M=8", kM + 1, same, note);

  // Rows no boundary cuts: kvsk_gemv's bits (its order); the cut rows are the float64 check's.
  size_t differ = 0;
  std::string first;
  const size_t es = dtSize(c.dt);
  for (int m = 0; m < kM; ++m)
    for (int n = 0; n < N; ++n) {
      const size_t at = ((size_t)m * N + n) * es;
      if (!cut[n] && std::memcmp(&y8[at], &plain[at], es) != 0 && differ++ == 0)
        first = " first at m " + std::to_string(m) + " row " + std::to_string(n);
    }
  reportBool("gemv-even", name + " uncut rows == kvsk_gemv", kM, differ == 0,
             std::to_string(N - cuts) + " uncut rows, " + std::to_string(differ) + " values differ" + first);
}

void shapeTests(const Case& c, int numSms) {
  const int N = c.sh.N, K = c.sh.K;
  Buf X(c.dt, (size_t)kM * K);
  void* W = nullptr;
  CK(cudaMalloc(&W, (size_t)N * K * dtSize(c.dt)));
  try {
    kvsk_fill_params fx{X.dev, c.dt, (int64_t)X.n, 3000 + (uint64_t)K, 1.f, 0.f}, fw{W, c.dt, (int64_t)N * K, 4000 + (uint64_t)N, 1.f, 0.f};
    CK(kvsk_fill(&fx, c.stream));
    CK(kvsk_fill(&fw, c.stream));
    CK(cudaStreamSynchronize(c.stream));  // W is read before the programmatic-launch wait: filled for sure
    X.down();
    DevVec<uint8_t> P(kM * c.rowBytes());
    const kvsk_gemv_params g{X.dev, W, P.dev, kM, N, K, c.dt, 4};
    CK(kvsk_gemv(&g, c.stream));
    CK(cudaStreamSynchronize(c.stream));
    const std::vector<uint8_t> plain = down(P.dev, kM * c.rowBytes());
    const int wave = kvsk_gemv_even_ctas(N, K, numSms);
    reportBool("gemv-even", c.name() + " one-wave grid", 1, wave >= 1 && wave <= std::max(1, 8 * numSms),
               std::to_string(wave) + " CTAs on " + std::to_string(numSms) + " SMs");
    for (const Grid& grid : gridsFor(N, K, wave)) try {
        gridTests(c, X, W, grid, plain);
      } catch (const std::exception& e) {
        reportBool("gemv-even", c.name() + " " + grid.what, 0, false, e.what());
      }
  } catch (...) {
    cudaFree(W);
    throw;
  }
  cudaFree(W);
}

// Three launches on one workspace, captured and replayed 3 times: o at M = 1 (one wave), N 7 x K 14336 at M = 3
// in 64 pieces (shorter than a row), qkv at M = 8 in 1001 pieces. Each replay gives the eager bits.
void graphTest(cudaStream_t stream, int numSms) {
  struct Launch { int n, k, m, ctas; };
  const Launch launches[] = {{4096, 4096, 1, kvsk_gemv_even_ctas(4096, 4096, numSms)}, {7, 14336, 3, 64}, {6144, 4096, 8, 1001}};
  const kvsk_dtype dt = KVSK_BF16;
  size_t wsBytes = 0;
  for (const Launch& l : launches) wsBytes = std::max(wsBytes, kvsk_gemv_even_workspace_bytes(l.ctas));
  DevVec<uint8_t> ws(wsBytes);
  CK(cudaMemset(ws.dev, 0, wsBytes));
  std::vector<void*> bufs;
  auto alloc = [&](size_t bytes) { void* p = nullptr; CK(cudaMalloc(&p, bytes)); bufs.push_back(p); return p; };
  std::vector<void*> xs, wts, ys, yg;
  for (const Launch& l : launches) {
    xs.push_back(alloc((size_t)l.m * l.k * 2));
    wts.push_back(alloc((size_t)l.n * l.k * 2));
    ys.push_back(alloc((size_t)l.m * l.n * 2));
    yg.push_back(alloc((size_t)l.m * l.n * 2));
    kvsk_fill_params fx{xs.back(), dt, (int64_t)l.m * l.k, 51 + (uint64_t)l.n, 1.f, 0.f}, fw{wts.back(), dt, (int64_t)l.n * l.k, 52 + (uint64_t)l.n, 1.f, 0.f};
    CK(kvsk_fill(&fx, stream));
    CK(kvsk_fill(&fw, stream));
  }
  CK(cudaStreamSynchronize(stream));
  auto all = [&](const std::vector<void*>& out) {
    for (size_t i = 0; i < std::size(launches); ++i) {
      const Launch& l = launches[i];
      const kvsk_gemv_even_params p{xs[i], wts[i], out[i], l.m, l.n, l.k, dt, l.ctas, ws.dev, wsBytes};
      CK(kvsk_gemv_even(&p, stream));
    }
  };
  all(ys);
  CK(cudaStreamSynchronize(stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  all(yg);
  CK(cudaStreamEndCapture(stream, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  bool same = true;
  for (int rep = 0; rep < 3; ++rep) {
    for (size_t i = 0; i < std::size(launches); ++i)
      CK(cudaMemsetAsync(yg[i], 0xFF, (size_t)launches[i].m * launches[i].n * 2, stream));
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaStreamSynchronize(stream));
    for (size_t i = 0; i < std::size(launches); ++i) {
      const size_t bytes = (size_t)launches[i].m * launches[i].n * 2;
      same = same && down(yg[i], bytes) == down(ys[i], bytes);
    }
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  for (void* p : bufs) cudaFree(p);
  reportBool("gemv-even", "CUDA graph of 3 launches (3 grids, one workspace), replayed 3 times == eager", 3, same, "");
}

// KVSERVE_GEMV_EVEN set to v (null: unset) while f runs.
template <typename F>
void withEnv(const char* v, const F& f) {
  const char* old = std::getenv("KVSERVE_GEMV_EVEN");
  const std::string saved = old ? old : "";
  if (v) setenv("KVSERVE_GEMV_EVEN", v, 1);
  else unsetenv("KVSERVE_GEMV_EVEN");
  try {
    f();
  } catch (...) {
    if (old) setenv("KVSERVE_GEMV_EVEN", saved.c_str(), 1);
    else unsetenv("KVSERVE_GEMV_EVEN");
    throw;
  }
  if (old) setenv("KVSERVE_GEMV_EVEN", saved.c_str(), 1);
  else unsetenv("KVSERVE_GEMV_EVEN");
}

void runnerTests(cudaStream_t stream, int numSms) {
  using kvs::cuda::GemmChoice;
  using kvs::cuda::GemmMode;
  using kvs::cuda::GemmRunner;
  const int N = 4096, K = 4096, maxM = 64;
  const kvs::DType bf = kvs::DType::BF16;
  const size_t rowBytes = (size_t)N * 2;
  Buf X(KVSK_BF16, (size_t)maxM * K), W(KVSK_BF16, (size_t)N * K);
  for (size_t i = 0; i < X.n; ++i) X.set(i, uni(-1, 1));
  for (size_t i = 0; i < W.n; ++i) W.set(i, uni(-1, 1));
  X.up();
  W.up();
  // The kernel's own bits at M = 8 on the one-wave grid: what the runner must give.
  const int wave = kvsk_gemv_even_ctas(N, K, numSms);
  DevVec<uint8_t> ws(kvsk_gemv_even_workspace_bytes(wave)), Y(maxM * rowBytes);
  CK(cudaMemset(ws.dev, 0, ws.n));
  const kvsk_gemv_even_params p{X.dev, W.dev, Y.dev, kM, N, K, KVSK_BF16, wave, ws.dev, ws.n};
  CK(kvsk_gemv_even(&p, stream));
  CK(cudaStreamSynchronize(stream));
  const std::vector<uint8_t> kernel = down(Y.dev, kM * rowBytes);

  std::vector<GemmChoice> plan;
  withEnv("1", [&] {
    GemmRunner timed(stream, maxM, GemmMode::Fast);
    timed.plan(N, K, bf, bf, W.dev);  // the even GEMV among the candidates of M <= 8
    plan = timed.exportPlan(N, K, bf, bf);
    bool ok = timed.gemvEven();
    for (const GemmChoice& c : plan)
      if (c.mMax <= kM && c.gemvEven) {  // where it won: run() gives the kernel's bits, gemvRows 0
        timed.run(X.dev, W.dev, Y.dev, c.mMax, N, K, bf, bf);
        CK(cudaStreamSynchronize(stream));
        ok = ok && down(Y.dev, c.mMax * rowBytes) == std::vector<uint8_t>(kernel.begin(), kernel.begin() + c.mMax * rowBytes) &&
             timed.gemvRows(c.mMax, N, K, bf, bf) == 0;
      }
    reportBool("gemv-even", "GemmRunner, KVSERVE_GEMV_EVEN=1: timed plan (where even won: its bits, gemvRows 0)", 1, ok,
               timed.describe(N, K, bf, bf));

    // The same plan with the even GEMV at M <= 8, imported: the kernel's bits there, gemvRows 0, exported as even.
    std::vector<GemmChoice> even = plan;
    for (GemmChoice& c : even)
      if (c.mMax <= kM) {
        c.gemv = true;
        c.gemvEven = true;
        c.gemvRows = 0;
      }
    GemmRunner r(stream, maxM, GemmMode::Fast);
    const std::string why = r.importPlan(N, K, bf, bf, even);
    bool same = why.empty();
    std::string note = why;
    for (int M = 1; same && M <= kM; ++M) {
      CK(cudaMemsetAsync(Y.dev, 0xFF, M * rowBytes, stream));
      r.run(X.dev, W.dev, Y.dev, M, N, K, bf, bf);
      CK(cudaStreamSynchronize(stream));
      if (down(Y.dev, M * rowBytes) != std::vector<uint8_t>(kernel.begin(), kernel.begin() + M * rowBytes)) {
        same = false;
        note += " M" + std::to_string(M) + " differs from the kernel;";
      }
      if (r.gemvRows(M, N, K, bf, bf) != 0) {
        same = false;
        note += " gemvRows(" + std::to_string(M) + ") is not 0;";
      }
    }
    const std::vector<GemmChoice> again = r.exportPlan(N, K, bf, bf);
    for (const GemmChoice& c : again)
      if (c.mMax <= kM && !(c.gemv && c.gemvEven)) {
        same = false;
        note += " exported M " + std::to_string(c.mMin) + ".." + std::to_string(c.mMax) + " not as even;";
      }
    reportBool("gemv-even", "GemmRunner, KVSERVE_GEMV_EVEN=1: plan with the even GEMV at M<=8 imported, run, exported", kM, same,
               note + " " + r.describe(N, K, bf, bf));

    // Switched off: refused in one line, nothing installed (a plan without it still goes in).
    withEnv("0", [&] {
      GemmRunner off(stream, maxM, GemmMode::Fast);
      const std::string w = off.importPlan(N, K, bf, bf, even);
      std::vector<GemmChoice> plainPlan = plan;
      for (GemmChoice& c : plainPlan)
        if (c.gemvEven) { c.gemvEven = false; c.gemvRows = 4; }
      const std::string then = off.importPlan(N, K, bf, bf, plainPlan);
      reportBool("gemv-even", "GemmRunner with KVSERVE_GEMV_EVEN=0: an even plan refused in one line", 1,
                 w.find("KVSERVE_GEMV_EVEN=0") != std::string::npos && w.find('\n') == std::string::npos && then.empty(),
                 w + (then.empty() ? "" : "; then: " + then));
      reportBool("gemv-even", "GemmRunner with KVSERVE_GEMV_EVEN=0: not a candidate", 1, !off.gemvEven(), "");
    });
    withEnv(nullptr, [&] {
      GemmRunner byDefault(stream, maxM, GemmMode::Fast);
      reportBool("gemv-even", "GemmRunner without KVSERVE_GEMV_EVEN: a candidate (the default)", 1, byDefault.gemvEven(), "");
    });
  });
  withEnv("2", [&] {
    std::string what;
    try {
      GemmRunner bad(stream, maxM, GemmMode::Fast);
    } catch (const std::exception& e) {
      what = e.what();
    }
    reportBool("gemv-even", "KVSERVE_GEMV_EVEN=2 refused when the runner is made", 1,
               what.find("KVSERVE_GEMV_EVEN must be 0 or 1") != std::string::npos, what);
  });
}

}  // namespace

void gemvEvenTests() {
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  int device = 0, numSms = 0;
  CK(cudaGetDevice(&device));
  CK(cudaDeviceGetAttribute(&numSms, cudaDevAttrMultiProcessorCount, device));
  // One workspace for every grid below (the largest: 2x chunks of the small shapes, clamped to 200000).
  const size_t wsBytes = kvsk_gemv_even_workspace_bytes(200000);
  void* ws = nullptr;
  CK(cudaMalloc(&ws, wsBytes));
  CK(cudaMemset(ws, 0, wsBytes));
  for (kvsk_dtype dt : {KVSK_BF16, KVSK_F16})
    for (const Shape& sh : kShapes) {
      const Case c{dt, sh, stream, ws, wsBytes};
      try {
        shapeTests(c, numSms);
      } catch (const std::exception& e) {
        reportBool("gemv-even", c.name(), 0, false, e.what());
      }
    }
  cudaFree(ws);
  try {
    graphTest(stream, numSms);
  } catch (const std::exception& e) {
    reportBool("gemv-even", "CUDA graph", 0, false, e.what());
  }
  try {
    runnerTests(stream, numSms);
  } catch (const std::exception& e) {
    reportBool("gemv-even", "GemmRunner", 0, false, e.what());
  }
  CK(cudaStreamDestroy(stream));
}

}  // namespace kt
