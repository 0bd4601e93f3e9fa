#include "safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace kvs {

namespace {

std::string header(const std::vector<SafetensorsEntry>& ts) {
  std::string h = "{\"__metadata__\":{\"format\":\"pt\",\"producer\":\"kvserve build\"}";
  size_t offset = 0;
  for (const SafetensorsEntry& t : ts) {
    h += ",\"" + t.name + "\":{\"dtype\":\"" + safetensorsDTypeName(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes) + "]}";
    offset += t.bytes;
  }
  h += "}";
  while ((8 + h.size()) % 64 != 0) h += ' ';
  return h;
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::vector<SafetensorsEntry>& entries) : path_(path) {
  for (const SafetensorsEntry& e : entries) dataBytes_ += e.bytes;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  const std::string h = header(entries);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(h.size()) >> (8 * i));
  writeRaw(len, 8);
  writeRaw(h.data(), h.size());
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsWriter::write(const void* data, size_t n) {
  if (written_ + n > dataBytes_) throw std::runtime_error(path_ + ": more tensor bytes than the header declares");
  writeRaw(data, n);
  written_ += n;
}

void SafetensorsWriter::writeRaw(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t(64) << 20));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error("cannot write " + path_ + ": " + std::strerror(errno));
    p += w;
    n -= size_t(w);
  }
}

void SafetensorsWriter::finish() {
  if (written_ != dataBytes_)
    throw std::runtime_error(path_ + ": " + std::to_string(written_) + " tensor bytes written, the header declares " +
                             std::to_string(dataBytes_));
  if (::fsync(fd_) != 0) throw std::runtime_error("cannot flush " + path_ + ": " + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
}

}  // namespace kvs
