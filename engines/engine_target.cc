// The CPU target: the instruction-set features this addon was compiled to use (from the compiler's
// predefined macros, which -march=native or a portable build set) and those the running CPU has (cpuid,
// through the compiler's __builtin_cpu_supports). An engine needs what its building addon was compiled with:
// a CPU that lacks one of those features cannot run the code that chose the engine's layout and dtype.
#include <algorithm>

#include "engine_target.h"

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace kvs {

namespace {

struct Feature {
  const char* name;
  bool compiled;
  bool host;
};

std::vector<Feature> knownFeatures() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  auto has = [](int supported) { return supported != 0; };
  return {
#define KVS_FEATURE(name, macro_defined) {name, macro_defined, has(__builtin_cpu_supports(name))}
#ifdef __AVX__
      KVS_FEATURE("avx", true),
#else
      KVS_FEATURE("avx", false),
#endif
#ifdef __AVX2__
      KVS_FEATURE("avx2", true),
#else
      KVS_FEATURE("avx2", false),
#endif
#ifdef __FMA__
      KVS_FEATURE("fma", true),
#else
      KVS_FEATURE("fma", false),
#endif
#ifdef __F16C__
      KVS_FEATURE("f16c", true),
#else
      KVS_FEATURE("f16c", false),
#endif
#ifdef __AVX512F__
      KVS_FEATURE("avx512f", true),
#else
      KVS_FEATURE("avx512f", false),
#endif
#ifdef __AVX512BW__
      KVS_FEATURE("avx512bw", true),
#else
      KVS_FEATURE("avx512bw", false),
#endif
#ifdef __AVX512VL__
      KVS_FEATURE("avx512vl", true),
#else
      KVS_FEATURE("avx512vl", false),
#endif
#ifdef __AVX512VNNI__
      KVS_FEATURE("avx512vnni", true),
#else
      KVS_FEATURE("avx512vnni", false),
#endif
#ifdef __AVX512BF16__
      KVS_FEATURE("avx512bf16", true),
#else
      KVS_FEATURE("avx512bf16", false),
#endif
#ifdef __AVX512FP16__
      KVS_FEATURE("avx512fp16", true),
#else
      KVS_FEATURE("avx512fp16", false),
#endif
#ifdef __AMX_TILE__
      KVS_FEATURE("amx-tile", true),
#else
      KVS_FEATURE("amx-tile", false),
#endif
#undef KVS_FEATURE
  };
#elif defined(__aarch64__)
  const unsigned long hw = getauxval(AT_HWCAP);
  return {
      {"neon", true, true},  // Advanced SIMD is part of every ARMv8-A CPU
#ifdef __ARM_FEATURE_FP16_VECTOR_ARITHMETIC
      {"asimdhp", true, (hw & HWCAP_ASIMDHP) != 0},
#else
      {"asimdhp", false, (hw & HWCAP_ASIMDHP) != 0},
#endif
#ifdef __ARM_FEATURE_SVE
      {"sve", true, (hw & HWCAP_SVE) != 0},
#else
      {"sve", false, (hw & HWCAP_SVE) != 0},
#endif
  };
#else
  return {};
#endif
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "no SIMD features" : out;
}

class CpuTargetProvider : public TargetProvider {
 public:
  EngineTarget describe() const override {
    EngineTarget t;
    t.device = "cpu";
#if defined(__x86_64__)
    t.arch = "x86_64";
#elif defined(__aarch64__)
    t.arch = "aarch64";
#else
    t.arch = "unknown";
#endif
    for (const Feature& f : knownFeatures()) {
      if (f.compiled) t.features.push_back(f.name);
      if (f.host) t.hostFeatures.push_back(f.name);
    }
    return t;
  }

  std::string mismatch(const EngineTarget& built) const override {
    const EngineTarget here = describe();
    if (built.device != here.device) return "built for device " + built.device + "; this engine runs on " + here.device;
    if (built.arch != here.arch) return "built for " + built.arch + "; this machine is " + here.arch;
    std::vector<std::string> missing;
    for (const auto& f : built.features)
      if (std::find(here.hostFeatures.begin(), here.hostFeatures.end(), f) == here.hostFeatures.end()) missing.push_back(f);
    if (missing.empty()) return "";
    return "built for " + join(built.features) + " (" + join(missing) + " missing here); this CPU has " +
           join(here.hostFeatures);
  }
};

}  // namespace

const TargetProvider& cpuTargetProvider() {
  static const CpuTargetProvider provider;
  return provider;
}

const TargetProvider* targetProviderFor(const std::string& device) {
  if (device == "cpu") return &cpuTargetProvider();
#ifdef KVSERVE_WITH_CUDA
  if (device == "cuda") return &cudaTargetProvider();
#endif
  return nullptr;
}

}  // namespace kvs
