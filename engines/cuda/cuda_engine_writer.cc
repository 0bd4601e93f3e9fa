// The CUDA backend's engine writer: the weights exactly as a load of the model puts them on the GPU
// (uploadWeights: fused, in the compute dtype, converted on the device), copied back from the device into
// model.safetensors in the CUDA layout (cuda_engine_layout.h), and the GEMM plans a load would time, timed
// once here on those weights (model_gemms.h). A load of the engine then copies each tensor to the device as
// it lies and restores the plans, so it computes with the same bytes and the same kernels. An fp8 build
// quantizes the layer matrices on the device exactly as an fp8 load of the model does (quantizeWeightsFp8)
// and times their FP8 GEMMs; an int8 build calibrates and quantizes on the host exactly as an int8 load does
// (cuda_int8.h: the CPU int8 build's SmoothQuant under the CUDA layout's constraints), uploads that, and
// times the int8 GEMMs.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "../engine_build.h"
#include "../safetensors_writer.h"
#include "cuda_backend.h"
#include "cuda_check.h"
#include "cuda_int8.h"
#include "device_check.h"
#include "model_gemms.h"

namespace kvs {

namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { KVS_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  ~Stream() {
    cudaStreamSynchronize(s);
    cudaStreamDestroy(s);
  }
};

// Device regions to the file in order, through two pinned buffers: the copy of one chunk down runs while
// the previous chunk is written.
void writeFromDevice(const cuda::CudaWeights& w, SafetensorsWriter& out, cudaStream_t stream,
                     const std::function<void(double)>& onFraction) {
  constexpr size_t kChunk = size_t(64) << 20;
  struct Piece { const char* src; size_t bytes; };
  std::vector<Piece> pieces;
  for (const cuda::CudaTensorRegion& r : w.tensors)
    for (size_t off = 0; off < r.bytes; off += kChunk)
      pieces.push_back({static_cast<const char*>(r.data) + off, std::min(kChunk, r.bytes - off)});
  cuda::PinnedBuffer buf[2];
  cudaEvent_t done[2] = {nullptr, nullptr};
  auto destroy = [&] { for (cudaEvent_t e : done) if (e) cudaEventDestroy(e); };
  try {
    for (int b = 0; b < 2; ++b) {
      buf[b].resize(kChunk);
      KVS_CUDA_CHECK(cudaEventCreateWithFlags(&done[b], cudaEventDisableTiming));
    }
    size_t written = 0;
    for (size_t i = 0; i <= pieces.size(); ++i) {
      if (i < pieces.size()) {
        KVS_CUDA_CHECK(cudaMemcpyAsync(buf[i % 2].get(), pieces[i].src, pieces[i].bytes, cudaMemcpyDeviceToHost, stream));
        KVS_CUDA_CHECK(cudaEventRecord(done[i % 2], stream));
      }
      if (i == 0) continue;
      const size_t prev = i - 1;
      KVS_CUDA_CHECK(cudaEventSynchronize(done[prev % 2]));
      out.write(buf[prev % 2].get(), pieces[prev].bytes);
      written += pieces[prev].bytes;
      if (onFraction) onFraction(double(written) / double(std::max<size_t>(out.dataBytes(), 1)));
    }
  } catch (...) {
    cudaStreamSynchronize(stream);
    destroy();
    throw;
  }
  destroy();
}

}  // namespace

EngineBuildResult buildCudaEngine(const ModelConfig& cfg, const WeightStore& store, const EngineOptions& opts,
                                  const std::string& outDir, const BuildProgress& progress) {
  auto report = [&](const char* stage, double f) { if (progress) progress(stage, f); };
  cuda::checkCudaDevice(0);
  cuda::checkCudaModel(cfg);
  DType dt = cfg.dtype;
  if (opts.dtype != "auto") parseDType(opts.dtype, &dt);
  if (opts.quantization == "fp8" && dt == DType::F32)
    throw std::runtime_error("--quantization fp8 computes in bfloat16 or float16, not float32: pass --dtype bfloat16");
  if (opts.quantization == "int8" && dt == DType::F32)
    throw std::runtime_error("--quantization int8 computes in bfloat16 or float16, not float32: pass --dtype bfloat16");
  KVS_CUDA_CHECK(cudaSetDevice(0));
  {  // an engine built for an fp8 KV cache (calibrated after this write) must be able to run one
    cudaDeviceProp prop;
    KVS_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    cuda::checkKvCacheDtype(cfg, opts, dt, prop);
  }
  Stream stream;
  EngineBuildResult r;

  const auto t0 = std::chrono::steady_clock::now();
  report("prepare", 0);
  const size_t total = std::max<size_t>(1, store.totalBytes());
  size_t done = 0;
  const bool fp8 = opts.quantization == "fp8", int8 = opts.quantization == "int8";
  auto onTensor = [&](size_t bytes) {
    done += bytes;
    report("prepare", std::min(1.0, double(done) / double(total)));
  };
  cuda::CudaWeights w;
  if (int8) {
    // The host prepares the checkpoint, then calibrates and quantizes it: "prepare" ends where "calibrate" starts.
    bool prepared = false;
    auto stage = [&](const std::string& name, double f) {
      if (!prepared) {
        prepared = true;
        report("prepare", 1);
        r.prepareSeconds = secondsSince(t0);
      }
      report(name.c_str(), f);
    };
    cuda::CudaInt8Model q = cuda::quantizeInt8ForCuda(cfg, store, dt, opts.int8Request, opts.numThreads, opts.seed, onTensor, stage);
    w = cuda::uploadEngineWeights(cfg, *q.store, dt, {}, q.quant);
    r.layers = std::move(q.layers);
    r.calibration = q.calibration;
    r.int8Kernel = cuda::cudaInt8Kernel();
  } else {
    w = cuda::uploadWeights(cfg, store, dt, opts.seed, stream.s, onTensor, fp8);
    report("prepare", 1);
    r.prepareSeconds = secondsSince(t0);
  }

  // What the backend's constructor would time at load, for the same profile (cuda_backend.cc).
  const auto t1 = std::chrono::steady_clock::now();
  const int maxT = std::max(opts.maxNumBatchedTokens, 1), maxS = std::max(opts.maxNumSeqs, 1);
  const std::vector<cuda::ModelGemm> shapes = cuda::modelGemms(cfg, w, maxT, maxS);
  {
    cuda::GemmRunner gemm(stream.s, std::max(maxT, maxS), cuda::GemmMode::Fast);
    report("tune", 0);
    for (size_t i = 0; i < shapes.size(); ++i) {
      cuda::planModelGemms(gemm, {shapes[i]}, dt, nullptr);
      report("tune", double(i + 1) / double(shapes.size()));
    }
    r.tunedGemms = cuda::exportModelGemms(gemm, shapes, dt);
  }
  r.tuneSeconds = secondsSince(t1);

  const auto t2 = std::chrono::steady_clock::now();
  std::vector<SafetensorsEntry> entries;
  for (const cuda::CudaTensorRegion& t : w.tensors) {
    entries.push_back({t.spec.name, t.spec.dtype, t.spec.shape, t.bytes});
    r.tensors.push_back({t.spec.name, t.spec.dtype, t.spec.shape, t.bytes});
    r.weightBytes += t.bytes;
  }
  SafetensorsWriter out(outDir + "/model.safetensors", entries);
  report("write", 0);
  writeFromDevice(w, out, stream.s, [&](double f) { report("write", f); });
  out.finish();
  report("write", 1);
  r.writeSeconds = secondsSince(t2);
  r.dtype = dt;
  r.quantization = fp8 ? "fp8" : int8 ? "int8" : "none";
  r.target = cudaTargetProvider().describe();
  return r;
}

}  // namespace kvs
