// Safetensors loading: each file is mmapped read-only (MAP_PRIVATE) and tensors are views into it; or, with
// WeightMemory::Private, read into anonymous memory, so nothing that happens to the file afterwards (a
// truncation, an in-place rewrite) can reach the running engine. File mappings are registered with
// mapped_files.h, which turns the SIGBUS of a truncated file into one clear line.
// File layout: [u64 little-endian N][N bytes JSON header][data]; header entries are
// name → {dtype, shape, data_offsets: [begin, end)} relative to the start of data.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <stdexcept>

#include "file_system.h"
#include "json.h"
#include "mapped_files.h"
#include "weights.h"

namespace kvs {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const Tensor* WeightStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const Tensor& WeightStore::get(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t) throw std::runtime_error("missing tensor " + name + " in checkpoint");
  return *t;
}

size_t WeightStore::totalBytes() const {
  size_t n = 0;
  for (const auto& [name, t] : tensors_) n += t.nbytes;
  return n;
}

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

namespace {

class MmapWeightStore : public WeightStore {
 public:
  explicit MmapWeightStore(WeightMemory memory) : memory_(memory) {}
  ~MmapWeightStore() override {
    for (auto& [ptr, size] : maps_) {
      if (memory_ == WeightMemory::Mmap) unregisterMappedFile(ptr);
      munmap(ptr, size);
    }
  }

  // Maps (or reads) one file and adds its tensors. `path` is only used in messages.
  void addFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0) { ::close(fd); throw std::runtime_error("cannot stat " + path); }
    size_t size = static_cast<size_t>(st.st_size);
    if (size < 8) { ::close(fd); throw std::runtime_error(path + " is not a safetensors file (too short)"); }
    void* ptr;
    try {
      ptr = memory_ == WeightMemory::Private ? readPrivate(fd, size, path) : mapFile(fd, size, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    maps_.emplace_back(ptr, size);
    parse(path, static_cast<const uint8_t*>(ptr), size);
  }

 private:
  WeightMemory memory_;
  std::vector<std::pair<void*, size_t>> maps_;

  static void* mapFile(int fd, size_t size, const std::string& path) {
    void* ptr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (ptr == MAP_FAILED) throw std::runtime_error("cannot mmap " + path + ": " + std::strerror(errno));
    registerMappedFile(ptr, size, path);
    madvise(ptr, size, MADV_WILLNEED);  // start reading ahead now rather than on the first step's page faults
    return ptr;
  }

  // The file's bytes in anonymous memory, read-only once filled.
  static void* readPrivate(int fd, size_t size, const std::string& path) {
    void* ptr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ptr == MAP_FAILED) throw std::runtime_error("cannot allocate " + std::to_string(size) + " bytes for " + path + ": " + std::strerror(errno));
    auto* dst = static_cast<uint8_t*>(ptr);
    for (size_t done = 0; done < size;) {
      const ssize_t n = ::pread(fd, dst + done, std::min<size_t>(size - done, size_t(64) << 20), off_t(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        munmap(ptr, size);
        throw std::runtime_error("cannot read " + path + (n < 0 ? std::string(": ") + std::strerror(errno) : std::string(": the file shrank while it was read")));
      }
      done += size_t(n);
    }
    mprotect(ptr, size, PROT_READ);
    return ptr;
  }

  void parse(const std::string& path, const uint8_t* base, size_t size) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
    if (n > size - 8) throw std::runtime_error(path + ": safetensors header length " + std::to_string(n) + " exceeds the file size");
    Json header;
    try {
      header = Json::parse(reinterpret_cast<const char*>(base + 8), n);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(path + ": malformed safetensors header: " + e.what());
    }
    if (!header.isObject()) throw std::runtime_error(path + ": safetensors header is not a JSON object");
    const uint8_t* data = base + 8 + n;
    size_t dataSize = size - 8 - n;
    for (const auto& [name, entry] : header.asObject()) {
      if (name == "__metadata__") continue;
      try {
        Tensor t;
        t.name = name;
        std::string dt = entry.find("dtype") ? entry.find("dtype")->asString() : "";
        if (!parseTensorDType(dt, &t.dtype))
          throw std::runtime_error("unsupported dtype " + dt + " (supported: F32, BF16, F16, I8, I32)");
        if (!entry.find("shape") || !entry.find("data_offsets")) throw std::runtime_error("missing shape or data_offsets");
        for (const Json& d : entry.find("shape")->asArray()) {
          if (d.asInt() < 0) throw std::runtime_error("negative dimension");
          t.shape.push_back(d.asInt());
        }
        // Checked: a product wrapped around 2^64 could match data_offsets by accident.
        uint64_t bytes = dtypeSize(t.dtype);
        for (int64_t d : t.shape)
          if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes) || bytes > uint64_t(INT64_MAX))
            throw std::runtime_error("shape " + shapeString(t.shape) + " is too large");
        const auto& off = entry.find("data_offsets")->asArray();
        if (off.size() != 2) throw std::runtime_error("data_offsets must hold two integers");
        int64_t begin = off[0].asInt(), end = off[1].asInt();
        if (begin < 0 || end < begin || static_cast<uint64_t>(end) > dataSize)
          throw std::runtime_error("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                   ") lie outside the file's " + std::to_string(dataSize) + " data bytes");
        t.nbytes = static_cast<size_t>(end - begin);
        if (t.nbytes != bytes)
          throw std::runtime_error("holds " + std::to_string(t.nbytes) + " bytes but its shape needs " + std::to_string(bytes));
        t.data = data + begin;
        if (tensors_.count(name)) throw std::runtime_error("appears in more than one file");
        tensors_.emplace(name, std::move(t));
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(path + ": tensor " + name + ": " + e.what());
      }
    }
  }
};

}  // namespace

std::unique_ptr<WeightStore> loadSafetensors(const std::string& modelDir, WeightMemory memory,
                                             void (*onProgress)(void*, size_t, size_t), void* progressCtx) {
  std::vector<std::string> files;
  std::string single = modelDir + "/model.safetensors";
  std::string index = modelDir + "/model.safetensors.index.json";
  if (isFile(index)) {
    Json j;
    try {
      j = Json::parse(readFile(index));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(index + ": " + e.what());
    }
    const Json* map = j.find("weight_map");
    if (!map || !map->isObject()) throw std::runtime_error(index + ": missing \"weight_map\" object");
    std::set<std::string> seen;
    for (const auto& [name, file] : map->asObject()) {
      if (!file.isString()) throw std::runtime_error(index + ": weight_map entry " + name + " is not a file name");
      const std::string& f = file.asString();
      if (f.find('/') != std::string::npos) throw std::runtime_error(index + ": shard name " + f + " must be a plain file name");
      if (seen.insert(f).second) files.push_back(modelDir + "/" + f);
    }
    if (files.empty()) throw std::runtime_error(index + ": weight_map is empty");
  } else if (isFile(single)) {
    files.push_back(single);
  } else {
    throw std::runtime_error("no safetensors weights in " + modelDir +
                             " (expected model.safetensors or model.safetensors.index.json)");
  }
  size_t total = 0, done = 0;
  for (const auto& f : files) {
    if (!isFile(f)) throw std::runtime_error("missing safetensors shard " + f);
    total += fileSize(f);
  }
  auto store = std::make_unique<MmapWeightStore>(memory);
  for (const auto& f : files) {
    store->addFile(f);
    done += fileSize(f);
    if (onProgress) onProgress(progressCtx, done, total);
  }
  return store;
}

}  // namespace kvs
