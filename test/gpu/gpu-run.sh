#!/usr/bin/env bash
# The whole GPU suite in one call on the GPU machine (see docs/cuda.md): build the addon with CUDA and the
# kernel test program, run `vitest --config vitest.gpu.config.ts`, then the engine benchmark with CUDA graphs
# on and off and the GEMM algorithms picked at three probe sizes, and a per-phase profile of decode steps. Logs and measured numbers go to OUT_DIR (6 files).
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
for variant in "1:" "0:" "1:8192" "1:64"; do  # CUDA graphs on/off : GEMM probe M (empty = default, maxNumSeqs)
  echo "--- KVSERVE_CUDA_GRAPHS=${variant%%:*} KVSERVE_GEMM_PROBE_M=${variant#*:}" | tee -a "$out/bench.log"
  KVSERVE_CUDA_GRAPHS=${variant%%:*} KVSERVE_GEMM_PROBE_M=${variant#*:} npx tsx test/gpu/bench-engine.ts 2>&1 \
    | grep -v "npm warn" | tee -a "$out/bench.log" | tail -n 11
done
# Where a decode step's time goes (GPU time per phase, CUDA events; batch 1 and 256 runs summed apart).
KVSERVE_CUDA_PROFILE=1 npx tsx test/gpu/bench-engine.ts configs/llama-3-8b.json 512 1 2>&1 | grep "cuda profile" | tee -a "$out/bench.log"
KVSERVE_CUDA_PROFILE=1 npx tsx test/gpu/bench-engine.ts configs/llama-3-8b.json 512 256 2>&1 | grep "cuda profile" | tee -a "$out/bench.log"
exit $status
