#!/usr/bin/env bash
# `kvserve bench` against `kvserve serve --device cuda` with dummy Llama-3-8B weights, and in the same run the
# reference: transformers' Llama of the same shape on the same GPU (test/gpu/torch_reference.py).
# Usage (repo root on the GPU machine, node from .gpu/, `npm run build` done): bash test/gpu/serve-bench.sh OUT_DIR
set -uo pipefail
out=${1:?usage: serve-bench.sh OUT_DIR}
mkdir -p "$out"
model=configs/llama-3-8b.json
port=8011

PYTHONUNBUFFERED=1 timeout 240 python3 test/gpu/torch_reference.py "$model" 2>&1 | grep -v -i warn | tee "$out/torch-reference.txt"

node dist/cli.js serve --device cuda --load-format dummy --model "$model" --port "$port" --max-model-len 4096 \
  --log-level warn >"$out/serve.log" 2>&1 &
server=$!
t0=$(date +%s)
until node -e "fetch('http://127.0.0.1:$port/health').then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"; do
  kill -0 $server 2>/dev/null || { echo "server died"; tail -n 20 "$out/serve.log"; exit 1; }
  [ $(( $(date +%s) - t0 )) -gt 300 ] && { echo "server not ready in 300 s"; tail -n 20 "$out/serve.log"; exit 1; }
  sleep 0.5
done
echo "server ready in $(( $(date +%s) - t0 )) s (process start, dummy 8B weights on the GPU, KV cache)"
node -e "fetch('http://127.0.0.1:$port/v1/models').then(r=>r.text()).then(console.log)"

npx tsx test/gpu/write-synthetic-tokenizer.ts /tmp/kvserve-tok "$model"
common=(--base-url "http://127.0.0.1:$port" --tokenizer /tmp/kvserve-tok --input-len 1024 --output-len 128 --ignore-eos
        --percentiles 50,90,99)
# Each run draws its own prompts (seeds far apart: a sweep uses seed, seed+1, ...): a prompt repeated across
# runs would be served from the prefix cache.
node dist/cli.js bench "${common[@]}" --seed 0 --num-prompts 200 --request-rate inf --result-file "$out/bench-llama3-8b-inf.json" \
  2>&1 | tee "$out/bench-inf.txt"
node dist/cli.js bench "${common[@]}" --seed 100 --num-prompts 64 --sweep-rates 2,8,32 --result-file "$out/bench-llama3-8b-sweep.json" \
  2>&1 | tail -n 30 | tee "$out/bench-sweep.txt"
node dist/cli.js bench "${common[@]}" --seed 200 --num-prompts 32 --max-concurrency 1 \
  --result-file "$out/bench-llama3-8b-c1.json" 2>&1 | tee "$out/bench-c1.txt"
node -e "fetch('http://127.0.0.1:$port/metrics').then(r=>r.text()).then(t=>console.log(t.split('\n').filter(l=>/^kvserve_(num_preemptions|prefix_cache|kv_cache_usage|generation_tokens)/.test(l)).join('\n')))"
kill -TERM $server; wait $server
echo "server exit: $?"
