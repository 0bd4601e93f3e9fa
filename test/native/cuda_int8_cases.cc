// The host half of --quantization int8 on the CUDA backend (engines/cuda/cuda_int8.cc), which needs no GPU,
// run on its own for test/native/cuda-int8.test.ts:
//   cuda_int8_cases MODEL_DIR [MAX_LAYER_ERROR] < calibration (one sample of token ids per line)
// quantizes the model for the CUDA layout in bfloat16 and prints
//   "tensor NAME [d0, d1] DTYPE"         every tensor of the store, in layout order
//   "check: MESSAGE"                     checkCudaEngineTensors over the store, with the formats read back
//                                        from its dtypes (cudaQuantOf; "" when it passes)
//   "formats: same|differ"               cudaQuantOf(store) against the formats the conversion reports
//   "layer NAME int8|float WHY"          the search's report, per linear layer
//   "matrix NAME rows N mismatches M"    the layout's int8 (or float) matrix against the CPU model it came
//                                        from, through each side's own definition of the product (below)
//   "vector NAME mismatches M"           norms and biases: the layout's bf16 against the CPU's float32
// For an int8 matrix the CPU side is kvs::linear over the CPU's int8 Mat (packed rows, actSmooth applied as
// its input is quantized); the layout side is kvserve_kernels.h's definition written out plainly: x times
// act_smooth, quantized per row to [-127, 127] with the 2^-100 absmax floor, int32 sums over the row-major
// I8 rows, float(sum) * (xScale * weight_scale). Both are compared after rounding to bf16 (the CUDA output
// dtype), on random inputs representable in bf16 (the CUDA activations are bf16): equal bits are required.
// A float matrix must hold the CPU matrix's rows as they are.
#include <cmath>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>

#include "engines/cpu/cpu_weights.h"
#include "engines/cpu/int8_model.h"
#include "engines/cpu/linear.h"
#include "engines/cpu/thread_pool.h"
#include "engines/cuda/cuda_int8.h"
#include "engines/file_system.h"
#include "engines/half.h"
#include "test/native/xorshift.h"

using namespace kvs;

namespace {

using kvs_cases::uniform;

float bf16(float v) { return bf16ToFloat(floatToBf16(v)); }

// kvserve_kernels.h's int8 linear layer, plainly: y [T, N] from x [T, K] and the layout's tensors.
std::vector<float> layoutProduct(const std::vector<float>& x, int64_t T, int64_t K, const int8_t* w, const float* scale,
                                 const float* smooth, int64_t N) {
  std::vector<float> y(size_t(T * N));
  std::vector<int8_t> q{std::vector<int8_t>(size_t(K))};
  for (int64_t t = 0; t < T; ++t) {
    float amax = 0;
    for (int64_t k = 0; k < K; ++k) amax = std::fmax(amax, std::fabs(x[size_t(t * K + k)] * (smooth ? smooth[k] : 1.0f)));
    const float a = std::fmax(amax, 0x1p-100f), inv = 127.0f / a, xs = a / 127.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float r = std::nearbyint(x[size_t(t * K + k)] * (smooth ? smooth[k] : 1.0f) * inv);
      q[size_t(k)] = int8_t(std::fmax(-127.0f, std::fmin(127.0f, r)));
    }
    for (int64_t n = 0; n < N; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += int32_t(q[size_t(k)]) * int32_t(w[n * K + k]);
      y[size_t(t * N + n)] = float(acc) * (xs * scale[n]);
    }
  }
  return y;
}

// The CPU model's parts of a fused layout matrix, stacked: kvs::linear of each part side by side.
std::vector<float> cpuProduct(ThreadPool& pool, const std::vector<float>& x, int64_t T, int64_t K,
                              const std::vector<const Mat*>& parts, int64_t N) {
  std::vector<float> y(size_t(T * N));
  int64_t n0 = 0;
  for (const Mat* m : parts) {
    linear(pool, x.data(), K, T, *m, nullptr, y.data() + n0, N);
    n0 += m->rows;
  }
  return y;
}

void compareMatrix(ThreadPool& pool, const WeightStore& store, const std::string& name, const std::vector<const Mat*>& parts) {
  const Tensor& w = store.get(name + ".weight");
  const int64_t N = w.shape[0], K = w.shape[1];
  int64_t mismatches = 0;
  if (w.dtype == DType::I8) {
    const int64_t T = 7;
    std::vector<float> x(size_t(T * K));
    for (float& v : x) v = bf16(uniform() * 4.0f);
    for (int64_t k = 0; k < K; ++k) x[size_t(K + k)] = 0;  // an all-zero row
    const Tensor* smooth = store.find(name + ".act_smooth");
    const std::vector<float> a = layoutProduct(x, T, K, static_cast<const int8_t*>(w.data),
                                               static_cast<const float*>(store.get(name + ".weight_scale").data),
                                               smooth ? static_cast<const float*>(smooth->data) : nullptr, N);
    const std::vector<float> b = cpuProduct(pool, x, T, K, parts, N);
    for (size_t i = 0; i < a.size(); ++i) mismatches += floatToBf16(a[i]) != floatToBf16(b[i]);
  } else {
    const auto* p = static_cast<const uint8_t*>(w.data);
    for (const Mat* m : parts) {
      const size_t bytes = size_t(m->rows * m->cols) * dtypeSize(m->dtype);
      mismatches += m->dtype != w.dtype || std::memcmp(p, m->data, bytes) != 0;
      p += bytes;
    }
  }
  std::cout << "matrix " << name << " rows " << N << " mismatches " << mismatches << "\n";
}

void compareVector(const WeightStore& store, const std::string& name, const std::vector<const std::vector<float>*>& parts) {
  const Tensor& t = store.get(name);
  const auto* h = static_cast<const uint16_t*>(t.data);
  int64_t mismatches = 0, i = 0;
  for (const std::vector<float>* v : parts)
    for (float f : *v) mismatches += h[i++] != floatToBf16(f);
  std::cout << "vector " << name << " mismatches " << mismatches + std::abs(t.numel() - i) << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: cuda_int8_cases MODEL_DIR [MAX_LAYER_ERROR] < calibration\n";
    return 2;
  }
  const std::string dir = argv[1];
  const ModelConfig cfg = parseModelConfig(readFile(dir + "/config.json"));
  QuantizationRequest req;
  req.method = "int8";
  if (argc > 2) req.maxLayerError = std::stof(argv[2]);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::vector<int32_t> ids;
    for (int32_t id; in >> id;) ids.push_back(id);
    if (!ids.empty()) req.calibration.push_back(ids);
  }
  const auto checkpoint = loadSafetensors(dir);
  const cuda::CudaInt8Model q = cuda::quantizeInt8ForCuda(cfg, *checkpoint, DType::BF16, req, 1, 0, {}, {});
  for (const cuda::CudaTensorSpec& s : cuda::cudaTensorSpecs(cfg, DType::BF16, q.quant)) {
    std::cout << "tensor " << s.name << " [";
    for (size_t i = 0; i < s.shape.size(); ++i) std::cout << (i ? ", " : "") << s.shape[i];
    std::cout << "] " << dtypeName(s.dtype) << "\n";
  }
  const cuda::CudaQuant back = cuda::cudaQuantOf(cfg, *q.store, "int8");
  std::string message;
  try {
    cuda::checkCudaEngineTensors(cfg, *q.store, DType::BF16, back);
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  std::cout << "check: " << message << "\n";
  std::cout << "formats: " << (back.formats == q.quant.formats ? "same" : "differ") << "\n";
  for (const LayerQuantReport& r : q.layers)
    std::cout << "layer " << r.name << " " << (r.int8 ? "int8" : "float") << " " << r.keptBecause << "\n";

  // The CPU model the conversion started from, made again the same way (the search is deterministic).
  ThreadPool pool(1);
  const CpuModel f = prepareCpuModel(cfg, *checkpoint, DType::BF16, false, 0, pool);
  CalibrationSummary summary;
  const QuantizedCpuModel qm = quantizeModelInt8(cfg, f, req, cuda::cudaInt8Constraints(cfg), 1, pool, {}, &summary);
  compareVector(*q.store, "model.norm.weight", {&qm.model.finalNorm});
  for (int l = 0; l < cfg.numLayers; ++l) {
    const CpuLayer& L = qm.model.layers[size_t(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    compareVector(*q.store, p + "input_layernorm.weight", {&L.inputNorm});
    compareVector(*q.store, p + "post_attention_layernorm.weight", {&L.postNorm});
    compareMatrix(pool, *q.store, p + "self_attn.qkv_proj", {&L.q, &L.k, &L.v});
    compareMatrix(pool, *q.store, p + "self_attn.o_proj", {&L.o});
    compareMatrix(pool, *q.store, p + "mlp.gate_up_proj", {&L.gate, &L.up});
    compareMatrix(pool, *q.store, p + "mlp.down_proj", {&L.down});
  }
  return 0;
}
