#!/usr/bin/env bash
# The whole GPU suite in one call on the GPU machine (see docs/cuda.md): build the addon with CUDA and the
# kernel test program, run `vitest --config vitest.gpu.config.ts`, then the engine benchmark with the GEMM
# algorithms picked at three probe sizes. Logs and measured numbers go to OUT_DIR (6 files).
# Usage (repo root, node from .gpu/): bash test/gpu/gpu-run.sh OUT_DIR [vitest args...]
set -uo pipefail
out=${1:?usage: gpu-run.sh OUT_DIR}
mkdir -p "$out"
export KVSERVE_GPU_OUT=$out
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/build.log"
start=$(date +%s)
if ! npx cmake-js compile --out build -p "$(nproc)" >>"$out/build.log" 2>&1; then
  grep -E "error|Error" "$out/build.log" | head -40; tail -n 30 "$out/build.log"; exit 1
fi
npx tsc -p tsconfig.json >>"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
npx vitest run --config vitest.gpu.config.ts "${@:2}" >"$out/test-gpu.log" 2>&1
status=$?
grep -E "^\[gpu\]|✓|✗|×|FAIL|passed|failed|suite |ALL PASSED|FAILED|Error" "$out/test-gpu.log" | grep -v "^ *$" | head -80
for probe in "" 64 16; do
  KVSERVE_GEMM_PROBE_M=$probe npx tsx test/gpu/bench-engine.ts 2>&1 | grep -v "npm warn" | tee -a "$out/bench.log" | tail -n 12
done
exit $status
