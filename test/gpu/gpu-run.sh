#!/usr/bin/env bash
# The whole GPU suite in one call on the GPU machine (see docs/cuda.md): build the addon with CUDA and the
# kernel test program, run `vitest --config vitest.gpu.config.ts`, then the engine benchmark.
# Logs and measured numbers go to OUT_DIR. Usage (repo root, node from .gpu/): bash test/gpu/gpu-run.sh OUT_DIR
set -uo pipefail
out=${1:?usage: gpu-run.sh OUT_DIR}
mkdir -p "$out"
export KVSERVE_GPU_OUT=$out
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
start=$(date +%s)
if ! npx cmake-js compile --out build -p "$(nproc)" >"$out/build-native.log" 2>&1; then
  grep -E "error|Error" "$out/build-native.log" | head -40; tail -n 30 "$out/build-native.log"; exit 1
fi
npx tsc -p tsconfig.json >"$out/build-ts.log" 2>&1 || { tail -n 30 "$out/build-ts.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
npx vitest run --config vitest.gpu.config.ts "${@:2}" >"$out/test-gpu.log" 2>&1
status=$?
grep -E "^\[gpu\]|✓|✗|×|FAIL|passed|failed|suite |ALL PASSED|FAILED" "$out/test-gpu.log" | grep -v "^ *$" | head -80
npx tsx test/gpu/bench-engine.ts 2>&1 | tee "$out/bench.log" | tail -n 15
exit $status
