#!/usr/bin/env bash
# `kvserve bench` through HTTP at TensorRT-LLM's published throughput shapes (ISL/OSL 128/128 x 1024 requests,
# 2048/128 x 256, 1000/1000 x 512, all at request rate inf) and TTFT at concurrency 1 for 128- and 2048-token
# prompts, against `kvserve serve --device cuda` with dummy Llama-3-8B bf16 weights; then 1000/1000 again with
# --batch-invariant for each of INVARIANT_GEMMS (default "auto cublaslt": the mode's default GEMM, hybrid on Hopper,
# then cuBLASLt's one algorithm per shape). The PyTorch peer of the same shape runs first, in the same lease (torch_peer.py);
# test/perf/ttft-breakdown.ts splits TTFT at concurrency 1 into the client's, the server's and the engine's parts.
# Usage (repo root on the GPU machine, `npm run build` done): bash test/gpu/serve-bench-trt.sh OUT_DIR
# SERVE_FLAGS="--quantization fp8" adds flags to the default server (a later flag overrides an earlier one, e.g.
# "--max-num-seqs 512"); SKIP_INVARIANT=1 leaves out the --batch-invariant runs.
set -uo pipefail
out=${1:?usage: serve-bench-trt.sh OUT_DIR}
mkdir -p "$out"
res=$(mktemp -d)  # per-run result files, tarred into OUT_DIR/results.tar at the end (few files come back)
model=configs/llama-3-8b.json
port=8011

# SKIP_PEER=1 leaves the peer out (when its numbers of the same lease are already taken).
[ -n "${SKIP_PEER:-}" ] || PYTHONUNBUFFERED=1 timeout 220 python3 test/gpu/torch_peer.py "$model" 2>&1 | grep -v -i warn | tee "$out/torch-peer.txt"
npx tsx test/gpu/write-synthetic-tokenizer.ts /tmp/kvserve-tok "$model" >/dev/null

serve() {  # serve [extra flags...]: starts the server in the background and waits for /health
  node dist/cli.js serve --device cuda --load-format dummy --model "$model" --port "$port" --max-model-len 4096 \
    --max-num-seqs 256 --max-num-batched-tokens 8192 --max-queue 0 --log-level warn ${SERVE_FLAGS:-} "$@" >>"$out/serve.log" 2>&1 &
  server=$!
  local t0=$(date +%s)
  until node -e "fetch('http://127.0.0.1:$port/health').then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"; do
    kill -0 $server 2>/dev/null || { echo "server died"; tail -n 20 "$out/serve.log"; exit 1; }
    [ $(( $(date +%s) - t0 )) -gt 120 ] && { echo "server not ready in 120 s"; exit 1; }
    sleep 0.5
  done
  echo "server $* ready in $(( $(date +%s) - t0 )) s"
}
bench() {  # bench NAME SEED ISL OSL N [flags...]
  local name=$1 seed=$2 isl=$3 osl=$4 n=$5
  shift 5
  node dist/cli.js bench --base-url "http://127.0.0.1:$port" --tokenizer /tmp/kvserve-tok --input-len "$isl" \
    --output-len "$osl" --ignore-eos --num-prompts "$n" --seed "$seed" --percentiles 50,90,99 \
    --result-file "$res/$name.json" "$@" >"$res/$name.txt" 2>&1
  { echo "== $name (ISL $isl, OSL $osl, $n requests $*)"; cat "$res/$name.txt"; } >>"$out/bench-all.txt"
  echo "== $name (ISL $isl, OSL $osl, $n requests $*)"
  grep -E "Request throughput|Output token throughput|Total Token throughput|Mean TTFT|Median TTFT|P99 TTFT|Mean TPOT|Median TPOT|Benchmark duration|Failed" "$res/$name.txt"
}

serve
npx tsx test/perf/ttft-breakdown.ts --base-url "http://127.0.0.1:$port" --model "$model" --requests 20 | tee -a "$out/ttft-breakdown.txt"
bench ttft-c1-128 1000 128 16 24 --max-concurrency 1
bench ttft-c1-2048 2000 2048 16 12 --max-concurrency 1
bench tput-128-128 3000 128 128 1024 --request-rate inf
bench tput-2048-128 4000 2048 128 256 --request-rate inf
bench tput-1000-1000 5000 1000 1000 512 --request-rate inf
kill -TERM $server; wait $server

if [ -z "${SKIP_INVARIANT:-}" ]; then
  for gemm in ${INVARIANT_GEMMS:-auto cublaslt}; do
    KVSERVE_INVARIANT_GEMM=$gemm serve --batch-invariant
    bench inv-$gemm-tput-1000-1000 7000 1000 1000 512 --request-rate inf
    kill -TERM $server; wait $server
  done
fi
tar -C "$res" -cf "$out/results.tar" .
