// The CPU backend's engine writer: the CpuModel that prepareCpuModel makes (matrices in the compute dtype,
// norms and biases widened to float32) written as one safetensors file under the checkpoint's tensor names.
// Loading it back with dtype "auto" borrows every matrix from the mapping as it lies (no conversion) and only
// copies the float32 vectors, so the engine computes with the very bytes a direct load would have made.
// With --quantization int8 the float model is first calibrated and quantized (smoothquant.h): its int8
// matrices are written with their companions (int8_tensors.h) and its norms with the smoothing folded in.
// Tensors are ordered by element size, widest first, so each one starts aligned to its element size with no
// holes between them (safetensors readers refuse holes); the data start is padded to 64 bytes.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "../engine_build.h"
#include "../int8_tensors.h"
#include "cpu_weights.h"
#include "int8_dot.h"
#include "int8_model.h"
#include "thread_pool.h"

namespace kvs {

namespace {

struct OutTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t bytes;
};

// The tensors of m under the Hugging Face names bindLlamaWeights resolves (a tied lm_head is not written).
std::vector<OutTensor> cpuModelTensors(const ModelConfig& cfg, const CpuModel& m) {
  std::vector<OutTensor> out;
  auto mat = [&](const std::string& name, const Mat& w) {
    if (w.dtype != DType::I8) {
      out.push_back({name, w.dtype, {w.rows, w.cols}, w.data, size_t(w.rows) * size_t(w.cols) * dtypeSize(w.dtype)});
      return;
    }
    out.push_back({name, DType::I8, packedInt8Shape(w.rows, w.cols), w.data, packedInt8Bytes(w.rows, w.cols)});
    const std::string m = moduleOf(name);
    const size_t rows = size_t(w.rows), cols = size_t(w.cols);
    out.push_back({m + ".weight_scale", DType::F32, {w.rows}, w.scale, rows * sizeof(float)});
    out.push_back({m + ".weight_sum", DType::I32, {w.rows}, w.rowSum, rows * sizeof(int32_t)});
    if (w.actSmooth) out.push_back({m + ".act_smooth", DType::F32, {w.cols}, w.actSmooth, cols * sizeof(float)});
  };
  auto vec = [&](const std::string& name, const std::vector<float>& v) {
    if (!v.empty()) out.push_back({name, DType::F32, {int64_t(v.size())}, v.data(), v.size() * sizeof(float)});
  };
  mat("model.embed_tokens.weight", m.embed);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const CpuLayer& L = m.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    vec(p + "input_layernorm.weight", L.inputNorm);
    mat(p + "self_attn.q_proj.weight", L.q);
    mat(p + "self_attn.k_proj.weight", L.k);
    mat(p + "self_attn.v_proj.weight", L.v);
    vec(p + "self_attn.q_proj.bias", L.qBias);
    vec(p + "self_attn.k_proj.bias", L.kBias);
    vec(p + "self_attn.v_proj.bias", L.vBias);
    vec(p + "self_attn.q_norm.weight", L.qNorm);
    vec(p + "self_attn.k_norm.weight", L.kNorm);
    mat(p + "self_attn.o_proj.weight", L.o);
    vec(p + "post_attention_layernorm.weight", L.postNorm);
    mat(p + "mlp.gate_proj.weight", L.gate);
    mat(p + "mlp.up_proj.weight", L.up);
    mat(p + "mlp.down_proj.weight", L.down);
  }
  vec("model.norm.weight", m.finalNorm);
  if (!cfg.tieWordEmbeddings || m.lmHead.dtype == DType::I8) mat("lm_head.weight", m.lmHead);
  std::stable_sort(out.begin(), out.end(),
                   [](const OutTensor& a, const OutTensor& b) { return dtypeSize(a.dtype) > dtypeSize(b.dtype); });
  return out;
}

std::string header(const std::vector<OutTensor>& ts) {
  std::string h = "{\"__metadata__\":{\"format\":\"pt\",\"producer\":\"kvserve build\"}";
  size_t offset = 0;
  for (const OutTensor& t : ts) {
    h += ",\"" + t.name + "\":{\"dtype\":\"" + safetensorsDTypeName(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes) + "]}";
    offset += t.bytes;
  }
  h += "}";
  while ((8 + h.size()) % 64 != 0) h += ' ';  // the spec allows trailing spaces in the header
  return h;
}

void writeAll(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(64) << 20));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    p += w;
    n -= size_t(w);
  }
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

EngineBuildResult buildCpuEngine(const ModelConfig& cfg, const WeightStore& store, const EngineOptions& opts,
                                 const QuantizationRequest& quant, const std::string& outDir,
                                 const BuildProgress& progress) {
  auto report = [&](const char* stage, double f) { if (progress) progress(stage, f); };
  const auto t0 = std::chrono::steady_clock::now();
  DType target = cfg.dtype;
  const bool keep = opts.dtype == "auto";
  if (!keep) parseDType(opts.dtype, &target);
  ThreadPool pool(opts.numThreads);
  const size_t total = std::max<size_t>(1, store.totalBytes());
  size_t done = 0;
  report("prepare", 0);
  CpuModel m = prepareCpuModel(cfg, store, target, keep, opts.seed, pool, [&](size_t bytes) {
    done += bytes;
    report("prepare", std::min(1.0, double(done) / double(total)));
  });
  report("prepare", 1);

  EngineBuildResult r;
  r.prepareSeconds = secondsSince(t0);
  const CpuModel* written = &m;
  QuantizedCpuModel qm;
  if (quant.method == "int8") {
    qm = quantizeModelInt8(cfg, m, quant, QuantizeOptions{}, opts.numThreads, pool, progress, &r.calibration);
    r.layers = qm.layers;
    r.quantization = "int8";
    r.int8Kernel = int8::isaName();
    written = &qm.model;
  }
  const auto t1 = std::chrono::steady_clock::now();
  const std::vector<OutTensor> ts = cpuModelTensors(cfg, *written);
  const std::string h = header(ts);
  const std::string path = outDir + "/model.safetensors";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  try {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(h.size()) >> (8 * i));
    writeAll(fd, len, 8, path);
    writeAll(fd, h.data(), h.size(), path);
    size_t bytes = 0, written = 0;
    for (const OutTensor& t : ts) bytes += t.bytes;
    report("write", 0);
    for (const OutTensor& t : ts) {
      writeAll(fd, t.data, t.bytes, path);
      written += t.bytes;
      report("write", bytes ? double(written) / double(bytes) : 1.0);
      r.tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
    }
    if (::fsync(fd) != 0) throw std::runtime_error("cannot flush " + path + ": " + std::strerror(errno));
    r.weightBytes = bytes;
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  report("write", 1);
  r.writeSeconds = secondsSince(t1);
  r.dtype = m.dtype;
  r.target = cpuTargetProvider().describe();
  r.tunedGemms = cpuTargetProvider().tunedGemms();
  return r;
}

}  // namespace kvs
