// The load-time check of an engine folder (manifest.json written by `kvserve build`, src/build/manifest.ts).
#include "engine_manifest.h"

#include <cstdio>
#include <limits>
#include <stdexcept>
#include <utility>

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

std::string text(const Json* j) { return j && j->isString() ? j->asString() : ""; }
int64_t integer(const Json* j) { return j && j->isInteger() ? j->asInt() : 0; }

// manifest.json "tunedGemms" (src/build/manifest.ts writes what the native build returned); entries that are not
// objects are skipped, absent fields read as empty, so a backend's import sees what is there and validates it.
std::vector<TunedGemm> tunedGemms(const Json* list) {
  std::vector<TunedGemm> out;
  if (!list || !list->isArray()) return out;
  for (const Json& g : list->asArray()) {
    if (!g.isObject()) continue;
    TunedGemm t;
    t.weight = text(g.find("weight"));
    t.n = int(integer(g.find("n")));
    t.k = int(integer(g.find("k")));
    t.mMin = int(integer(g.find("mMin")));
    t.mMax = int(integer(g.find("mMax")));
    t.algo = text(g.find("algo"));
    t.kernel = text(g.find("kernel"));
    t.rowsPerCta = int(integer(g.find("rowsPerCta")));
    t.algoId = int(integer(g.find("algoId")));
    t.tile = int(integer(g.find("tile")));
    t.stages = int(integer(g.find("stages")));
    t.splitK = int(integer(g.find("splitK")));
    t.workspace = integer(g.find("workspace"));
    out.push_back(t);
  }
  return out;
}

// manifest.json "kvCache": absent, or {dtype: "fp8_e4m3", kScale: [...], vScale: [...], ...}, every scale a
// positive finite float32 (a scale divides every K or V element the cache stores).
void readKvCache(const Json* kv, EngineManifestView& out, const std::string& where) {
  if (!kv) return;
  auto bad = [&](const std::string& what) { return std::runtime_error(where + ": manifest.json kvCache" + what + ": " + out.rebuild); };
  if (!kv->isObject()) throw bad(" is not an object");
  const Json* dtype = kv->find("dtype");
  if (!dtype || !dtype->isString() || dtype->asString() != "fp8_e4m3")
    throw bad(".dtype " + (dtype && dtype->isString() ? "\"" + dtype->asString() + "\"" : std::string("(absent or not a string)")) +
              " is not one this kvserve runs (fp8_e4m3)");
  out.kvCacheDtype = dtype->asString();
  for (const auto& [name, dst] : {std::pair{"kScale", &out.kvScalesK}, std::pair{"vScale", &out.kvScalesV}}) {
    const Json* list = kv->find(name);
    if (!list || !list->isArray()) throw bad(std::string(".") + name + " is not an array of per-layer scales");
    for (const Json& e : list->asArray()) {
      const std::string at = std::string(".") + name + "[" + std::to_string(dst->size()) + "]";
      if (!e.isNumber())
        throw bad(at + " is " + (e.isNull() ? "null" : e.isArray() || e.isObject() ? std::string("an ") + e.kindName()
                                                                                     : std::string("a ") + e.kindName()) +
                  ", not a positive finite number");
      const float v = static_cast<float>(e.asNumber());
      if (!(v > 0.f && v < std::numeric_limits<float>::infinity())) {
        char num[32];
        std::snprintf(num, sizeof num, "%g", e.asNumber());
        throw bad(at + " = " + num + " is not a positive finite number" + (v == 0.f && e.asNumber() > 0 ? " in float32" : ""));
      }
      dst->push_back(v);
    }
  }
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
  built.gpuName = text(target->find("gpuName"));
  built.computeCapability = text(target->find("computeCapability"));
  built.smCount = int(integer(target->find("smCount")));
  built.driverVersion = text(target->find("driverVersion"));
  built.cudaDriverVersion = text(target->find("cudaDriverVersion"));
  built.cudaRuntimeVersion = text(target->find("cudaRuntimeVersion"));
  built.cublasLtVersion = text(target->find("cublasLtVersion"));
  built.cudaArchs = text(target->find("cudaArchs"));
  if (built.device != device)
    throw std::runtime_error(where + " was built for device " + built.device + "; this load asked for device " + device +
                             ": serve it with --device " + built.device + ", or " + rebuild + " --device " + device);
  if (const TargetProvider* provider = targetProviderFor(built.device)) {
    const std::string why = provider->mismatch(built);
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
  const bool runs = out.quantization == "none" || out.quantization == "int8" ||
                    (out.quantization == "fp8" && built.device == "cuda");
  if (!runs)
    throw std::runtime_error(where + " is quantized as " + out.quantization + " for device " + built.device +
                             ", which this kvserve cannot run (it runs none and int8 on cpu and cuda, fp8 on cuda): " + rebuild);
  if (out.weightsFile != "model.safetensors")
    throw std::runtime_error(where + ": manifest.json weights.file must be model.safetensors: " + rebuild);
  out.tunedGemms = tunedGemms(m.find("tunedGemms"));
  out.rebuild = rebuild;
  readKvCache(m.find("kvCache"), out, where);
  return out;
}

}  // namespace kvs
