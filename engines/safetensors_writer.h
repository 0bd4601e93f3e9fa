// Writing one safetensors file front to back: the header from the tensor list, then the tensors' bytes in
// that order, as they come (a backend may stream them from device memory), then fsync. The header is padded
// with spaces (which the format allows) so the data starts 64-byte aligned; tensors follow each other with
// no holes (safetensors readers refuse holes), so a tensor is aligned to its element size only when every
// tensor before it has a size that keeps it so (ordering them widest dtype first does).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model_config.h"

namespace kvs {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t bytes;
};

class SafetensorsWriter {
 public:
  // Creates (truncates) `path` and writes the header. Throws std::runtime_error naming the path.
  SafetensorsWriter(const std::string& path, const std::vector<SafetensorsEntry>& entries);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The next n bytes of tensor data.
  void write(const void* data, size_t n);
  // Checks that every declared byte was written, flushes to disk and closes.
  void finish();
  size_t dataBytes() const { return dataBytes_; }

 private:
  void writeRaw(const void* data, size_t n);
  std::string path_;
  int fd_ = -1;
  size_t dataBytes_ = 0, written_ = 0;
};

}  // namespace kvs
