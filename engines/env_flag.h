// A 0/1 switch read from the environment (the KVSERVE_* A/B knobs of the CUDA backend).
#pragma once
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace kvs {

// `dflt` when `name` is unset or empty, true for "1", false for "0"; anything else throws, naming the variable.
inline bool envFlag(const char* name, bool dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  const std::string s(v);
  if (s == "1") return true;
  if (s == "0") return false;
  throw std::runtime_error(std::string(name) + " must be 0 or 1, not \"" + s + "\"");
}

}  // namespace kvs
