// What happens when a mmapped weights file shrinks under a running server. Reading a page of a file mapping
// that lies past the file's end raises SIGBUS, which would kill the process with no word of why. Every
// weights mapping is registered here; the first registration installs a SIGBUS handler that, for a fault
// inside a registered mapping, writes one line naming the file (write(2), async-signal-safe) and exits with
// kWeightsGoneExitCode. A SIGBUS anywhere else goes to the handler that was there before, or to the default
// action, as if this one did not exist.
#pragma once
#include <cstddef>
#include <string>

namespace kvs {

// 128 + SIGBUS, the status a shell reports for a process killed by SIGBUS: the same meaning, with a message.
constexpr int kWeightsGoneExitCode = 135;

// Registers [base, base + size) as a read-only mapping of `path`. Thread-safe; at most 4096 at a time
// (a checkpoint of more shards fails to load with a clear error).
void registerMappedFile(const void* base, size_t size, const std::string& path);
// Before munmap.
void unregisterMappedFile(const void* base);

}  // namespace kvs
