// Runs engines/cuda/cuda_archs.cc over cases read from stdin, one per line: ARCHS MAJOR MINOR DRIVER BUILD
// (e.g. "80,90 12 0 13000 13000"); prints one JSON object per line for test/native/cuda-archs.test.ts.
#include <iostream>
#include <sstream>
#include <string>

#include "engines/cuda/cuda_archs.h"

using namespace kvs::cuda;

static std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string list;
    GpuFacts gpu;
    in >> list >> gpu.major >> gpu.minor >> gpu.driverCuda >> gpu.buildCuda;
    gpu.name = "Test GPU";
    try {
      const auto archs = parseCudaArchs(list);
      const Coverage c = coverage(archs, gpu.major, gpu.minor);
      const ArchCheck check = checkCudaArchs(archs, gpu);
      std::cout << "{\"coverage\":" << quoted(c == Coverage::Code ? "code" : c == Coverage::PtxJit ? "ptx" : "none")
                << ",\"described\":" << quoted(describeCudaArchs(archs)) << ",\"error\":" << quoted(check.error)
                << ",\"note\":" << quoted(check.note) << "}\n";
    } catch (const std::invalid_argument& e) {
      std::cout << "{\"parseError\":" << quoted(e.what()) << "}\n";
    }
  }
  return 0;
}
