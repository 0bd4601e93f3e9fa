// kvserve_kernel_tests: every kernel against a plain CPU reference over a grid of shapes (see each suite's
// file for its grid and tolerances). Prints one summary line per suite, writes every case to the file named
// by argv[1] (default kernel-tests.tsv), and exits non-zero when any case fails.
// Usage: kvserve_kernel_tests [results.tsv] [suite...]   suites: layers attention attn-prefill sampling gemm fp8 fp8fuse
//        gemv-fuse kvabsmax int8 gemm-inv gemm-wgmma gemv-even
//        kvserve_kernel_tests --list   the suite names, one a line (an unknown name is an error, exit 2)
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>

#include "harness.h"

namespace kt {
std::vector<Row>& results() { static std::vector<Row> r; return r; }
void layerTests();
void attentionTests();
void attentionPrefillTests();  // attention_prefill_test.cu
void samplingTests();
void gemmTests();
void fp8Tests();
void fp8FuseTests();   // fp8_fuse_test.cu
void gemvFuseTests();  // gemv_fuse_test.cu
void kvAbsMaxTests();  // kv_absmax_test.cu
void int8Tests();
void gemmInvTests();   // gemm_inv_test.cu
void gemmWgmmaTests(); // gemm_wgmma_test.cu
void gemvEvenTests();  // gemv_even_test.cu
}  // namespace kt

int main(int argc, char** argv) {
  const std::vector<std::pair<std::string, void (*)()>> suites = {
      {"layers", kt::layerTests}, {"attention", kt::attentionTests},
      {"attn-prefill", kt::attentionPrefillTests}, {"sampling", kt::samplingTests}, {"gemm", kt::gemmTests},
      {"fp8", kt::fp8Tests}, {"fp8fuse", kt::fp8FuseTests}, {"gemv-fuse", kt::gemvFuseTests},
      {"kvabsmax", kt::kvAbsMaxTests}, {"int8", kt::int8Tests}, {"gemm-inv", kt::gemmInvTests},
      {"gemm-wgmma", kt::gemmWgmmaTests}, {"gemv-even", kt::gemvEvenTests}};
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (auto& [name, fn] : suites) std::printf("%s\n", name.c_str());
    return 0;
  }
  const char* path = argc > 1 ? argv[1] : "kernel-tests.tsv";
  std::vector<std::string> only(argv + (argc > 2 ? 2 : argc), argv + argc);
  for (const std::string& name : only)
    if (std::none_of(suites.begin(), suites.end(), [&](const auto& s) { return s.first == name; })) {
      std::fprintf(stderr, "unknown suite %s (kvserve_kernel_tests --list names them)\n", name.c_str());
      return 2;
    }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  // The kernels run as the engine runs them: with programmatic dependent launch on sm_90+ (KVSERVE_CUDA_PDL=0: off).
  const char* pdlEnv = std::getenv("KVSERVE_CUDA_PDL");
  const bool pdl = prop.major >= 9 && !(pdlEnv && std::string(pdlEnv) == "0");
  kvsk_set_programmatic_launch(pdl);
  std::printf("device: %s (sm_%d%d, %d SMs), programmatic dependent launch %s\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, pdl ? "on" : "off");
  int crashed = 0;
  for (auto& [name, fn] : suites) {
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      fn();
    } catch (const std::exception& e) {
      std::printf("SUITE %s ABORTED: %s\n", name.c_str(), e.what());
      kt::results().push_back({name, "aborted", 0, 0, 0, false, e.what()});
      ++crashed;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("suite %-10s done in %.1fs\n", name.c_str(), s);
  }
  FILE* f = std::fopen(path, "w");
  if (f) {
    std::fprintf(f, "suite\tcase\tsub_cases\tmax_abs_err\tworst_err_over_tol\tpass\tnote\n");
    for (auto& r : kt::results())
      std::fprintf(f, "%s\t%s\t%d\t%.3g\t%.3g\t%s\t%s\n", r.suite.c_str(), r.name.c_str(), r.cases, r.maxAbs, r.worst,
                   r.pass ? "PASS" : "FAIL", r.note.c_str());
    std::fclose(f);
  }
  std::map<std::string, std::array<double, 4>> sum;  // rows, passed, worst, maxAbs
  for (auto& r : kt::results()) {
    auto& s = sum[r.suite];
    s[0] += 1; s[1] += r.pass; s[2] = std::max(s[2], r.worst); s[3] = std::max(s[3], r.maxAbs);
  }
  std::printf("\n%-10s %6s %6s %18s %12s\n", "suite", "cases", "passed", "worst err/tol", "max |err|");
  int failed = crashed;
  for (auto& [k, s] : sum) {
    std::printf("%-10s %6d %6d %18.3f %12.3g\n", k.c_str(), (int)s[0], (int)s[1], s[2], s[3]);
    failed += (int)(s[0] - s[1]);
  }
  std::printf("%s (%d failing cases; details in %s)\n", failed ? "FAILED" : "ALL PASSED", failed, path);
  return failed ? 1 : 0;
}
