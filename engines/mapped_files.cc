#include "mapped_files.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace kvs {

namespace {

constexpr size_t kMaxMappings = 4096;
constexpr size_t kMaxPath = 1024;

// A slot is live while `end` != 0. The handler reads it without a lock: begin, size and path are written
// before `end` is published (release), and `end` is cleared before the slot is reused.
struct Slot {
  std::atomic<uintptr_t> end{0};
  uintptr_t begin = 0;
  char path[kMaxPath] = {};
};

Slot g_slots[kMaxMappings];
std::mutex g_mutex;  // registration only; never taken by the handler
bool g_installed = false;
struct sigaction g_previous;

void writeAll(const char* s, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= size_t(w);
  }
}

void writeStr(const char* s) { writeAll(s, std::strlen(s)); }

void onSigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const Slot& slot : g_slots) {
    const uintptr_t end = slot.end.load(std::memory_order_acquire);
    if (end == 0 || addr < slot.begin || addr >= end) continue;
    writeStr("kvserve: the weights file ");
    writeStr(slot.path);
    writeStr(" was truncated or removed while mmapped (SIGBUS); restart, or use --load-format private to load "
             "weights into private memory\n");
    ::_exit(kWeightsGoneExitCode);
  }
  // Not a weights mapping: whatever would have happened without us.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) return g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    return g_previous.sa_handler(sig);
  }
  // The default action: restore it and return, so the faulting access runs again and gets it.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGBUS, &dfl, nullptr);
}

void installLocked() {
  if (g_installed) return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = onSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &g_previous) != 0) return;  // no handler: the old behaviour, nothing worse
  g_installed = true;
}

}  // namespace

void registerMappedFile(const void* base, size_t size, const std::string& path) {
  if (size == 0) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  installLocked();
  for (Slot& slot : g_slots) {
    if (slot.end.load(std::memory_order_relaxed) != 0) continue;
    slot.begin = reinterpret_cast<uintptr_t>(base);
    const size_t n = std::min(path.size(), kMaxPath - 1);
    std::memcpy(slot.path, path.data(), n);
    slot.path[n] = '\0';
    slot.end.store(slot.begin + size, std::memory_order_release);
    return;
  }
  throw std::runtime_error("more than " + std::to_string(kMaxMappings) + " weight files mapped at once");
}

void unregisterMappedFile(const void* base) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (Slot& slot : g_slots)
    if (slot.end.load(std::memory_order_relaxed) != 0 && slot.begin == reinterpret_cast<uintptr_t>(base))
      slot.end.store(0, std::memory_order_release);
}

}  // namespace kvs
