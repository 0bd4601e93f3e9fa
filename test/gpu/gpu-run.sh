#!/usr/bin/env bash
# The GPU suite and benchmarks in one call on a CUDA machine (see docs/cuda.md). Logs and measured numbers go
# to OUT_DIR.
# Usage (repo root): bash test/gpu/gpu-run.sh OUT_DIR [stage...]
#   build    the addon with CUDA, the kernel test program and the kernel benchmark; the TypeScript
#   kernels  the kernel test program alone (kernel-tests.tsv)
#   suite    vitest --config vitest.gpu.config.ts (the kernel tests again, the engine against transformers,
#            batch invariance in --batch-invariant mode, kvserve serve --device cuda)
#   kbench   kvserve_kernel_bench: copy bandwidth, GEMV and attention bandwidth (kernel-bench.txt)
#   bench    the engine benchmark (dummy Llama-3-8B bf16): default mode, then with programmatic dependent
#            launch off, with CUDA graphs off, and --batch-invariant with cuBLASLt and with our own GEMM
#            (bench.log, bench-engine.jsonl); BENCH_VARIANTS picks others (below), BENCH_BATCHES the decode
#            batch sizes (default 1..256)
#   profile  per-phase GPU time of decode steps at batch 1 and 256, default mode and --batch-invariant (cuBLASLt
#            and own GEMM), and of one 128- and one 2048-token prompt prefilled alone
#   engineload  kvserve build --device cuda of dummy Llama-3-8B bf16, then its load time from the page cache
#            against the model's (engine-load.log, bench-engine-load.jsonl; needs ~16 GB of free disk)
# Without stages: build kernels kbench bench profile suite (engineload only when named).
set -uo pipefail
out=${1:?usage: gpu-run.sh OUT_DIR [stage...]}
shift
stages=${*:-build kernels kbench bench profile suite}
mkdir -p "$out"
export KVSERVE_GPU_OUT=$out
status=0
has() { [[ " $stages " == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee -a "$out/build.log"

if has build; then
  start=$(date +%s)
  if ! npx cmake-js compile --out build -p "$(nproc)" >>"$out/build.log" 2>&1; then
    grep -E "error|Error" "$out/build.log" | head -40; tail -n 30 "$out/build.log"; exit 1
  fi
  npm run build:ts >>"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log"; exit 1; }  # tsc and the playground page
  echo "build: $(( $(date +%s) - start )) s"
fi
if has kernels; then
  build/Release/kvserve_kernel_tests "$out/kernel-tests.tsv" >"$out/kernel-tests.log" 2>&1 || status=1
  grep -vE "^  " "$out/kernel-tests.log" | tail -n 12
fi
if has kbench; then
  build/Release/kvserve_kernel_bench 2>&1 | tee "$out/kernel-bench.txt"
fi
if has bench; then
  # batch-invariant : CUDA graphs : programmatic dependent launch [: quantize [: KV cache dtype [: GEMV fusion]]]
  # (BENCH_VARIANTS="0:1:1 1:1:1" for fewer; "0:1:1:fp8" for --quantization fp8, "0:1:1:fp8:fp8" with an fp8 cache;
  # "0:1:1:::0 0:1:1" batch 1.. with the GEMV epilogue fusions off, then on (the default): KVSERVE_GEMV_FUSE).
  # After an "@", comma-separated VAR=value settings for that variant alone, for A/B runs and the knobs of
  # kernels not yet verified: "0:1:1:fp8@KVSERVE_FP8_FUSE=0,KVSERVE_GEMV_FP8=v1" (the fp8 path before run 11);
  # "0:1:1@KVSERVE_GEMV_EVEN=0"; "1:1:1@KVSERVE_INVARIANT_GEMM=own": --batch-invariant on our own GEMM instead
  # of cuBLASLt's one algorithm per shape; "1:1:1@KVSERVE_INVARIANT_GEMM=wgmma": on our wgmma GEMM
  # (kernels/gemm_wgmma.cu, Hopper only); "0:1:1:fp8 0:1:1:fp8@KVSERVE_GEMV_FUSE_FP8=1" (BENCH_BATCHES=1,8) fp8
  # without, then with the FP8 GEMV's epilogue fusions (kernels/gemv_fp8_fused.cu).
  for variant in ${BENCH_VARIANTS:-0:1:1 0:1:0 0:0:1 1:1:1 1:1:1@KVSERVE_INVARIANT_GEMM=own 0:1:1:fp8 0:1:1:fp8:fp8}; do
    extra=()
    if [[ $variant == *@* ]]; then IFS=, read -r -a extra <<<"${variant#*@}"; variant=${variant%%@*}; fi
    IFS=: read -r inv graphs pdl quant kv fuse <<<"$variant"
    echo "--- KVSERVE_BATCH_INVARIANT=$inv KVSERVE_CUDA_GRAPHS=$graphs KVSERVE_CUDA_PDL=$pdl KVSERVE_QUANTIZE=${quant:-none} KVSERVE_KV_CACHE_DTYPE=${kv:-auto} KVSERVE_GEMV_FUSE=${fuse:-1} ${extra[*]}" | tee -a "$out/bench.log"
    env KVSERVE_BATCH_INVARIANT=$inv KVSERVE_CUDA_GRAPHS=$graphs KVSERVE_CUDA_PDL=$pdl KVSERVE_QUANTIZE=${quant:-none} \
      KVSERVE_KV_CACHE_DTYPE=${kv:-auto} KVSERVE_GEMV_FUSE=${fuse:-1} "${extra[@]}" \
      npx tsx test/gpu/bench-engine.ts configs/llama-3-8b.json 512 "${BENCH_BATCHES:-1,8,32,64,128,256}" 2>&1 \
      | grep -v "npm warn" | tee -a "$out/bench.log" | tail -n 14
  done
fi
if has profile; then  # where a step's time goes (GPU time per phase, CUDA events)
  for mode in 0:cublaslt 1:cublaslt 1:own; do
    IFS=: read -r inv invgemm <<<"$mode"
    for b in 1 256; do
      KVSERVE_BATCH_INVARIANT=$inv KVSERVE_INVARIANT_GEMM=$invgemm KVSERVE_CUDA_PROFILE=1 KVSERVE_BENCH_SINGLE= \
        npx tsx test/gpu/bench-engine.ts configs/llama-3-8b.json 512 $b 2>&1 \
        | grep "cuda profile" | sed "s/^/invariant=$inv gemm=$invgemm batch=$b /" | tee -a "$out/bench.log"
    done
  done
  # batch 1 without the GEMV epilogue fusions (the rope and silu phases apart from the qkv and gate/up GEMVs')
  KVSERVE_GEMV_FUSE=0 KVSERVE_CUDA_PROFILE=1 KVSERVE_BENCH_SINGLE= npx tsx test/gpu/bench-engine.ts configs/llama-3-8b.json 512 1 2>&1 \
    | grep "cuda profile" | sed "s/^/invariant=0 batch=1 gemv-fuse=0 /" | tee -a "$out/bench.log"
  for n in 128 2048; do  # one prompt alone: the engine's part of TTFT at concurrency 1
    KVSERVE_CUDA_PROFILE=1 KVSERVE_BENCH_SINGLE_ONLY=1 KVSERVE_BENCH_SINGLE=$n npx tsx test/gpu/bench-engine.ts 2>&1 \
      | grep -E "cuda profile|single prefill" | sed "s/^/single $n: /" | tee -a "$out/bench.log"
  done
fi
if has engineload; then
  npx tsx test/gpu/bench-engine-load.ts 2>&1 | grep -v "npm warn" | tee "$out/engine-load.log" | tail -n 24 || status=1
fi
if has suite; then
  npx vitest run --config vitest.gpu.config.ts >"$out/test-gpu.log" 2>&1 || status=1
  grep -E "^\[gpu\]|✓|✗|×|FAIL|passed|failed|Error" "$out/test-gpu.log" | grep -v "^ *$" | head -60
fi
exit $status
