#!/usr/bin/env bash
# Builds and runs the kernel test program on the GPU machine without Node (plain CMake + ninja).
# Usage: bash test/gpu/kernel-tests.sh [outdir] [suite...]   (writes kernel-tests.tsv and the build log there)
set -euo pipefail
out=${1:-build/gpu-tests}; shift || true
mkdir -p "$out"
cmake -S . -B build/kernel-tests -G Ninja -DCMAKE_BUILD_TYPE=Release >"$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
ninja -C build/kernel-tests kvserve_kernel_tests >"$out/build.log" 2>&1 || { tail -n 60 "$out/build.log"; exit 1; }
exe=$(find build/kernel-tests -name kvserve_kernel_tests -type f | head -n 1)
"$exe" "$out/kernel-tests.tsv" "$@"
