// The load-time check of an engine folder (manifest.json written by `kvserve build`, src/build/manifest.ts).
#include "engine_manifest.h"

#include <stdexcept>

#include "engine_target.h"
#include "file_system.h"
#include "json.h"

namespace kvs {

namespace {

// "kvserve build --model M ... --out DIR", from the manifest's rebuild arguments (without --out).
std::string rebuildCommand(const Json& m, const std::string& dir) {
  std::string cmd = "kvserve build";
  const Json* args = m.find("rebuild");
  if (args && args->isArray()) {
    for (const Json& a : args->asArray()) {
      if (!a.isString()) continue;
      const std::string& s = a.asString();
      cmd += " " + (s.find_first_of(" \t'\"") == std::string::npos && !s.empty() ? s : "'" + s + "'");
    }
  } else {
    cmd += " --model MODEL";
  }
  return cmd + " --out " + dir;
}

std::vector<std::string> strings(const Json* j) {
  std::vector<std::string> out;
  if (!j || !j->isArray()) return out;
  for (const Json& s : j->asArray())
    if (s.isString()) out.push_back(s.asString());
  return out;
}

}  // namespace

EngineManifestView checkEngineManifest(const std::string& dir, const std::string& device) {
  const std::string where = "engine " + dir;
  if (!isDir(dir)) throw std::runtime_error(where + " does not exist (or is not a folder)");
  const std::string path = dir + "/manifest.json";
  if (!isFile(path)) throw std::runtime_error(where + " has no manifest.json (is it a folder made by kvserve build?)");
  Json m;
  try {
    m = Json::parse(readFile(path));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(where + ": manifest.json is not valid JSON (" + e.what() + ")");
  }
  if (!m.isObject()) throw std::runtime_error(where + ": manifest.json is not a JSON object");
  const std::string rebuild = "rebuild with " + rebuildCommand(m, dir);
  const Json* version = m.find("formatVersion");
  if (!version || !version->isInteger())
    throw std::runtime_error(where + ": manifest.json has no integer formatVersion: " + rebuild);
  const int64_t v = version->asInt();
  if (v != kEngineFormatVersion)
    throw std::runtime_error(where + " has format version " + std::to_string(v) + (v > kEngineFormatVersion ? " (newer)" : "") +
                             "; this kvserve reads format version " + std::to_string(kEngineFormatVersion) + ": " + rebuild);

  const Json* target = m.find("target");
  if (!target || !target->isObject()) throw std::runtime_error(where + ": manifest.json has no target: " + rebuild);
  EngineTarget built;
  const Json* dev = target->find("device");
  const Json* arch = target->find("arch");
  built.device = dev && dev->isString() ? dev->asString() : "";
  built.arch = arch && arch->isString() ? arch->asString() : "";
  built.features = strings(target->find("features"));
  if (built.device != device)
    throw std::runtime_error(where + " was built for device " + built.device + "; this load asked for device " + device +
                             ": serve it with --device " + built.device + ", or " + rebuild + " --device " + device);
  if (built.device == "cpu") {
    const std::string why = cpuTargetProvider().mismatch(built);
    if (!why.empty()) throw std::runtime_error(where + " was " + why + ": " + rebuild);
  }

  EngineManifestView out;
  const Json* weights = m.find("weights");
  const Json* dtype = weights ? weights->find("dtype") : nullptr;
  const Json* file = weights ? weights->find("file") : nullptr;
  if (!dtype || !dtype->isString() || !parseDType(dtype->asString(), &out.dtype))
    throw std::runtime_error(where + ": manifest.json has no valid weights.dtype: " + rebuild);
  out.weightsFile = file && file->isString() ? file->asString() : "";
  const Json* quant = m.find("quantization");
  const Json* method = quant && quant->isObject() ? quant->find("method") : nullptr;
  if (!method || !method->isString())
    throw std::runtime_error(where + ": manifest.json has no quantization.method: " + rebuild);
  out.quantization = method->asString();
  if (out.quantization != "none" && !(out.quantization == "int8" && built.device == "cpu"))
    throw std::runtime_error(where + " is quantized as " + out.quantization + " for device " + built.device +
                             ", which this kvserve cannot run (it runs none, and int8 on cpu): " + rebuild);
  if (out.weightsFile != "model.safetensors")
    throw std::runtime_error(where + ": manifest.json weights.file must be model.safetensors: " + rebuild);
  return out;
}

}  // namespace kvs
