// Engine::load: from a model folder (or a config.json for dummy weights) to a ready backend, with a message
// meant for the user at every way it can fail.
#include "engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <set>
#include <utility>
#include <stdexcept>

#include "batch_check.h"
#include "engine_manifest.h"
#include "file_system.h"
#include "int8_tensors.h"

#ifdef KVSERVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include "cuda/cuda_engine_layout.h"
#include "cuda/device_check.h"
#endif

namespace kvs {

namespace {

void checkOptions(const EngineOptions& o) {
  auto positive = [](int v, const char* name) {
    if (v <= 0) throw std::runtime_error(std::string(name) + " must be positive, found " + std::to_string(v));
  };
  positive(o.blockSize, "blockSize");
  positive(o.maxNumSeqs, "maxNumSeqs");
  positive(o.maxNumBatchedTokens, "maxNumBatchedTokens");
  if (o.numKvBlocks < 0) throw std::runtime_error("numKvBlocks must be >= 0");
  if (o.maxModelLen < 0) throw std::runtime_error("maxModelLen must be >= 0");
  if (o.kvCacheBytes < 0) throw std::runtime_error("kvCacheBytes must be >= 0");
  DType dt;
  if (o.dtype != "auto" && !parseDType(o.dtype, &dt))
    throw std::runtime_error("unsupported dtype \"" + o.dtype + "\" (supported: auto, float32, bfloat16, float16)");
  if (o.device != "cpu" && o.device != "cuda")
    throw std::runtime_error("unknown device \"" + o.device + "\" (supported: cpu, cuda)");
  if (o.quantization != "none" && o.quantization != "fp8" && o.quantization != "int8")
    throw std::runtime_error("unknown quantization \"" + o.quantization + "\" at load (supported: none, fp8 and int8 on cuda; " +
                             "int8 engines for the cpu are made by kvserve build)");
  if (o.quantization == "fp8" && o.device != "cuda")
    throw std::runtime_error("quantization fp8 runs on --device cuda only (on cpu: kvserve build --quantization int8)");
  if (o.quantization == "int8" && o.device != "cuda")
    throw std::runtime_error("quantization int8 at load runs on --device cuda only (on cpu: kvserve build --quantization int8, "
                             "or --engine-cache DIR)");
  if (o.quantization == "fp8" && o.batchInvariant)
    throw std::runtime_error("quantization fp8 with --batch-invariant is not supported yet (the FP8 GEMMs are tuned per M); "
                             "drop one of them");
  if (o.invariantGemm != "auto" && o.invariantGemm != "cublaslt" && o.invariantGemm != "own" && o.invariantGemm != "wgmma" &&
      o.invariantGemm != "hybrid")
    throw std::runtime_error("unknown invariantGemm \"" + o.invariantGemm +
                             "\" (the option or KVSERVE_INVARIANT_GEMM; supported: auto, cublaslt, own, wgmma, hybrid)");
  if (o.kvCacheDtype != "auto" && o.kvCacheDtype != "fp8")
    throw std::runtime_error("unsupported kvCacheDtype \"" + o.kvCacheDtype + "\" (supported: auto, fp8)");
  if (o.kvCacheDtype == "fp8" && o.device == "cpu")
    throw std::runtime_error("--kv-cache-dtype fp8 needs the CUDA backend (--device cuda); the CPU backend keeps the "
                             "KV cache in float32 (use --kv-cache-dtype auto)");
}

// One K and one V scale per layer, finite and positive, or none at all (1.0 each).
void checkKvScales(const EngineOptions& o, int numLayers) {
  if (o.kvScalesK.empty() && o.kvScalesV.empty()) return;
  for (const auto& [name, v] : {std::pair{"k", &o.kvScalesK}, std::pair{"v", &o.kvScalesV}}) {
    if (static_cast<int>(v->size()) != numLayers)
      throw std::runtime_error(std::string("kvScales.") + name + " has " + std::to_string(v->size()) +
                               " entries; the model has " + std::to_string(numLayers) +
                               " layers (one K and one V scale per layer)");
    for (size_t i = 0; i < v->size(); ++i)
      if (!((*v)[i] > 0.f && (*v)[i] < std::numeric_limits<float>::infinity()))
        throw std::runtime_error(std::string("kvScales.") + name + "[" + std::to_string(i) + "] = " +
                                 std::to_string((*v)[i]) + " is not a positive finite number");
  }
}

// An engine's kvCache section: one K and one V scale per layer (their values checkEngineManifest checked), and
// a device whose backend has an fp8 cache.
void checkEngineKvCache(const EngineManifestView& m, int numLayers, const std::string& dir, const std::string& device) {
  if (m.kvCacheDtype.empty()) return;
  for (const auto& [name, v] : {std::pair{"kScale", &m.kvScalesK}, std::pair{"vScale", &m.kvScalesV}})
    if (static_cast<int>(v->size()) != numLayers)
      throw std::runtime_error("engine " + dir + ": manifest.json kvCache." + name + " has " + std::to_string(v->size()) +
                               " entries; the model has " + std::to_string(numLayers) +
                               " layers (one K and one V scale per layer): " + m.rebuild);
  if (device != "cuda")
    throw std::runtime_error("engine " + dir + " holds an fp8 KV cache (manifest.json kvCache), which only the CUDA "
                             "backend runs (the CPU keeps its KV cache in float32): " + m.rebuild);
}

// Before anything is read: a GPU the build cannot use must not cost a checkpoint's load first.
void checkDevice(const std::string& device) {
  if (device != "cuda") return;
#ifdef KVSERVE_WITH_CUDA
  cuda::checkCudaDevice(0);
#else
  throw std::runtime_error("device cuda: this build has no CUDA backend (it was built without nvcc and cuBLASLt, "
                           "or with KVSERVE_CUDA=OFF); rebuild where the CUDA toolkit is, or use --device cpu");
#endif
}

// Checkpoint bytes of the tensors a backend prepares: every one bindLlamaWeights resolves, a tied lm_head once.
size_t boundBytes(const ModelWeights& w) {
  std::set<const Tensor*> seen{w.embed, w.lmHead, w.finalNorm};
  for (const LayerWeights& L : w.layers)
    for (const Tensor* t : {L.inputNorm, L.q, L.k, L.v, L.qBias, L.kBias, L.vBias, L.qNorm, L.kNorm, L.o, L.postNorm,
                            L.gate, L.up, L.down})
      if (t) seen.insert(t);
  size_t bytes = 0;
  for (const Tensor* t : seen) bytes += t->nbytes;
  return bytes;
}

}  // namespace

std::unique_ptr<Engine> Engine::load(const EngineOptions& opts,
                                     const std::function<void(const std::string&, double)>& progress) {
  auto report = [&](const char* stage, double f) { if (progress) progress(stage, f); };
  checkOptions(opts);
  checkDevice(opts.device);
  report("config", 0);

  // A dummy model may be named by its config file alone; an engine folder holds its own config.json.
  std::string dir = opts.model, configPath;
  const bool fromEngine = !opts.engine.empty();
  EngineManifestView manifest;
  if (fromEngine) {
    manifest = checkEngineManifest(opts.engine, opts.device);
    dir = opts.engine;
    configPath = dir + "/config.json";
    if (!isFile(configPath)) throw std::runtime_error("engine " + dir + " has no config.json (a truncated engine folder?)");
  } else if (opts.dummyWeights && isFile(opts.model)) {
    configPath = opts.model;
    size_t slash = opts.model.find_last_of('/');
    dir = slash == std::string::npos ? "." : opts.model.substr(0, slash);
  } else {
    if (opts.model.empty()) throw std::runtime_error("no model given");
    if (!isDir(opts.model)) {
      struct stat st {};
      if (::stat(opts.model.c_str(), &st) != 0) throw std::runtime_error("model folder " + opts.model + " does not exist");
      throw std::runtime_error("model path " + opts.model + " is not a folder");
    }
    configPath = dir + "/config.json";
    if (!isFile(configPath)) throw std::runtime_error("no config.json in model folder " + dir);
  }
  ModelConfig cfg;
  try {
    cfg = parseModelConfig(readFile(configPath));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(configPath + ": " + std::string(e.what()));
  }

  auto engine = std::unique_ptr<Engine>(new Engine());
  int maxLen = cfg.maxPositions;
  if (opts.maxModelLen > 0 && opts.maxModelLen < maxLen) maxLen = opts.maxModelLen;
  // Per-sequence block tables, the KV budget and the attention split plans are all sized from the context
  // length; a config claiming billions of positions would make them absurd (or overflow) long before any
  // request could use them.
  if (maxLen > kMaxContextLength)
    throw std::runtime_error("max_position_embeddings " + std::to_string(cfg.maxPositions) + " in " + configPath +
                             " is beyond the " + std::to_string(kMaxContextLength) +
                             " tokens kvserve serves in one context; pass --max-model-len N to serve a shorter context");
  if (cfg.slidingWindow > 0 && cfg.slidingWindow < maxLen)
    throw std::runtime_error("sliding-window attention (sliding_window " + std::to_string(cfg.slidingWindow) +
                             ") is not supported; set maxModelLen <= " + std::to_string(cfg.slidingWindow) +
                             " to run this model with full attention");
  cfg.maxPositions = maxLen;
  checkKvScales(opts, cfg.numLayers);
  if (fromEngine) checkEngineKvCache(manifest, cfg.numLayers, opts.engine, opts.device);
  report("config", 1);

  report("weights", 0);
  std::unique_ptr<WeightStore> weights;
  if (opts.dummyWeights) {
    DType dt = cfg.dtype;
    if (opts.dtype != "auto") parseDType(opts.dtype, &dt);
    weights = makeDummyWeights(cfg, dt);
  } else if (fromEngine) {
    // Everything in an engine is already in its final layout: "auto" keeps each matrix as stored, so the
    // backend borrows it from the mapping instead of converting it.
    try {
      weights = loadSafetensors(dir, opts.privateWeights ? WeightMemory::Private : WeightMemory::Mmap);
      if (opts.device == "cuda") {
#ifdef KVSERVE_WITH_CUDA
        // The fused CUDA layout; an int8 engine's matrices say which of them are int8.
        cuda::checkCudaEngineTensors(cfg, *weights, manifest.dtype, cuda::cudaQuantOf(cfg, *weights, manifest.quantization));
#endif
      } else {
        bindLlamaWeights(cfg, *weights);
        for (const auto& [name, t] : weights->all()) {
          const bool int8 = t.dtype == DType::I8;
          if (int8 ? manifest.quantization == "int8" : t.shape.size() != 2 || t.dtype == manifest.dtype) continue;
          throw std::runtime_error("tensor " + name + " is " + dtypeName(t.dtype) + ", the manifest says " +
                                   dtypeName(manifest.dtype) + (manifest.quantization == "int8" ? " or int8" : ""));
        }
        checkInt8Tensors(*weights);
      }
    } catch (const std::runtime_error& e) {
      throw std::runtime_error("engine " + dir + " is damaged: " + e.what() + " (rebuild it with kvserve build)");
    }
  } else {
    weights = loadSafetensors(dir, opts.privateWeights ? WeightMemory::Private : WeightMemory::Mmap);
    refuseIntegerTensors(*weights, dir);
  }

  // The "weights" stage runs while the backend prepares tensor after tensor (the mapping itself is lazy);
  // "backend" is what follows inside it: the KV cache, GEMM plans, graphs.
  EngineOptions o = opts;
  o.maxModelLen = maxLen;
  // The CPU borrows each matrix as stored ("auto"); the CUDA backend computes in the engine's dtype, which
  // config.json (the model's, unchanged) need not name.
  if (fromEngine) o.dtype = opts.device == "cuda" ? dtypeName(manifest.dtype) : "auto";
  if (fromEngine && opts.device == "cuda") o.quantization = manifest.quantization;
  // An engine built with an fp8 KV cache runs it whether the load asks for auto or fp8, with its calibrated
  // scales unless the caller gives its own (as vLLM uses a checkpoint's calibrated kv scales; docs/engines.md).
  if (fromEngine && !manifest.kvCacheDtype.empty()) {
    o.kvCacheDtype = "fp8";
    if (o.kvScalesK.empty()) {
      o.kvScalesK = manifest.kvScalesK;
      o.kvScalesV = manifest.kvScalesV;
    }
  }
  // A CUDA engine holds exactly the tensors the backend copies (fused, a tied lm_head once).
  const size_t total =
      fromEngine && opts.device == "cuda" ? weights->totalBytes() : boundBytes(bindLlamaWeights(cfg, *weights));
  size_t done = 0;
  bool weightsDone = false;
  auto finishWeights = [&] {
    if (weightsDone) return;
    weightsDone = true;
    report("weights", 1);
    report("backend", 0);
  };
  o.onTensorLoaded = [&](size_t bytes) {
    done += bytes;
    if (done >= total) finishWeights();
    else report("weights", double(done) / double(total));
  };
  if (opts.device == "cuda") {
#ifdef KVSERVE_WITH_CUDA
    engine->backend_ = makeCudaBackend(cfg, std::move(weights), o);
#else
    throw std::runtime_error("device cuda requested but this build has no CUDA (rebuild on a machine with nvcc and cuBLASLt)");
#endif
  } else {
    engine->backend_ = makeCpuBackend(cfg, std::move(weights), o);
  }
  finishWeights();
  report("backend", 1);
  engine->info_.config = cfg;
  engine->info_.backend = engine->backend_->info();
  engine->info_.blockSize = opts.blockSize;
  engine->info_.maxModelLen = maxLen;
  return engine;
}

void Engine::step(const StepBatch& batch, StepResult& out) {
  std::unique_lock<std::mutex> lock(stepMutex_, std::try_to_lock);
  if (!lock.owns_lock()) throw std::runtime_error("a step is already running on this engine");
  BatchLimits lim;
  lim.vocabSize = info_.config.vocabSize;
  lim.maxModelLen = info_.maxModelLen;
  lim.numBlocks = info_.backend.numKvBlocks;
  lim.blockSize = info_.blockSize;
  checkStepBatch(batch, lim);
  backend_->step(batch, out);
  if (batch.observeKvAbsMax) backend_->kvAbsMax(batch.slotMapping, batch.numTokens, out.kvAbsMax);
  else out.kvAbsMax.clear();
}

bool Engine::cudaAvailable() {
#ifdef KVSERVE_WITH_CUDA
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
#else
  return false;
#endif
}

}  // namespace kvs
