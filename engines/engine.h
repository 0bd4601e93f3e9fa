// The engine as the N-API shim sees it: load a model once, then run steps. No Node types here.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "backend.h"

namespace kvs {

// The longest context the engine serves (2^24 tokens; the longest-context open models have 10M).
constexpr int kMaxContextLength = 1 << 24;

struct EngineInfo {
  ModelConfig config;   // as parsed (maxPositions already clamped to maxModelLen)
  BackendInfo backend;
  int blockSize = 16;
  int maxModelLen = 0;
};

class Engine {
 public:
  // Reads config.json, opens the weights (or dummy ones), builds the backend. Throws std::runtime_error with
  // a message meant for the user: missing folder/file, malformed JSON, unsupported architecture or dtype.
  static std::unique_ptr<Engine> load(const EngineOptions& opts,
                                      const std::function<void(const std::string& stage, double fraction)>& progress = {});
  const EngineInfo& info() const { return info_; }
  // One step at a time: a second concurrent call throws.
  void step(const StepBatch& batch, StepResult& out);
  static bool cudaAvailable();  // built with CUDA and a device is present

 private:
  EngineInfo info_;
  std::unique_ptr<Backend> backend_;
  std::mutex stepMutex_;
};

}  // namespace kvs
