// Benchmark of the CUDA engine on dummy weights of a real shape (default configs/llama-3-8b.json, bf16):
// load time, prefill throughput (every sequence's prompt in steps of maxNumBatchedTokens tokens), and decode
// throughput at batch sizes 1..256 (or any list; the engine's maxNumSeqs is 256 or the largest) over contexts of
// ~CTX tokens (median of timed steps after warm-up).
// A benchmark, not a test: it prints a table (and appends JSON to bench-engine.jsonl when KVSERVE_GPU_OUT is
// set). KVSERVE_BATCH_INVARIANT=1 runs the --batch-invariant mode (KVSERVE_GEMM_PROBE_M then chooses the M at
// which cuBLASLt picks each GEMM's one algorithm; KVSERVE_INVARIANT_GEMM=own, or wgmma on Hopper, runs our own
// batch-invariant GEMM instead, read by the native load as the default of invariantGemm). KVSERVE_QUANTIZE=fp8 quantizes the layer matrices to fp8 at
// load (--quantization fp8); KVSERVE_KV_CACHE_DTYPE=fp8 holds the KV cache in e4m3 (--kv-cache-dtype fp8);
// KVSERVE_GEMV_FUSE=0 turns off the fusion of RoPE + cache write and SiLU·mul into the qkv and gate/up GEMVs
// (gemvFuse, on by default).
// KVSERVE_GEMV_FUSE_FP8=1 (read by the native load as the default of gemvFuseFp8) does so for fp8 matrices on the
// FP8 GEMV's version 2. Each decode batch's step is also split into the engine thread's part (nativeMs) and the
// device's (deviceMs: KVSERVE_CUDA_DEVICE_TIME=1, which this benchmark sets unless it is given).
// Usage: npx tsx test/gpu/bench-engine.ts [config.json] [ctx] [batch,batch,...]
import { appendFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { greedyRows, loadNative, type StepBatch } from '../../src/runner/binding.js';
import { cudaOptions, repoRoot } from './gpu-harness.js';

const config = process.argv[2] ?? resolve(repoRoot, 'configs', 'llama-3-8b.json');
const CTX = Number(process.argv[3] ?? 512);
const BATCHES = (process.argv[4] ?? '1,8,32,64,128,256').split(',').map(Number);
const SEQS = Math.max(256, ...BATCHES);
const MAX_T = 8192,
  BLOCK = 16,
  STEPS = 20,
  WARMUP = 3;
const maxBlocks = Math.ceil((CTX + WARMUP + STEPS + 1) / BLOCK);

function batchOf(
  seqs: Array<{ id: number; start: number; count: number; sample: boolean }>,
  blocksPerSeq = maxBlocks,
): StepBatch {
  const tok: number[] = [],
    pos: number[] = [],
    slot: number[] = [],
    qs = [0],
    ctx: number[] = [],
    table: number[] = [],
    si: number[] = [];
  for (const s of seqs) {
    for (let p = s.start; p < s.start + s.count; p++) {
      tok.push(1 + ((p * 7919 + s.id * 104729) % 30000));
      pos.push(p);
      slot.push((s.id * blocksPerSeq + Math.floor(p / BLOCK)) * BLOCK + (p % BLOCK));
    }
    qs.push(tok.length);
    ctx.push(s.start + s.count);
    for (let j = 0; j < blocksPerSeq; j++) table.push(s.id * blocksPerSeq + j);
    if (s.sample) si.push(tok.length - 1);
  }
  const R = si.length;
  return {
    tokenIds: Int32Array.from(tok),
    positions: Int32Array.from(pos),
    queryStart: Int32Array.from(qs),
    contextLens: Int32Array.from(ctx),
    blockTables: Int32Array.from(table),
    maxBlocksPerSeq: blocksPerSeq,
    slotMapping: Int32Array.from(slot),
    sampleIndices: Int32Array.from(si),
    ...greedyRows(R),
  };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

const batchInvariant = process.env.KVSERVE_BATCH_INVARIANT === '1';
const quantize = process.env.KVSERVE_QUANTIZE === 'fp8' ? 'fp8' : 'none';
const kvCacheDtype = process.env.KVSERVE_KV_CACHE_DTYPE === 'fp8' ? 'fp8' : 'auto';
const gemvFuse = process.env.KVSERVE_GEMV_FUSE !== '0';
// Single prompts prefilled alone (one step each, first token sampled): what TTFT at concurrency 1 costs the
// engine (129 and 2049: a prompt of a round length plus BOS, as `kvserve bench` sends them).
// KVSERVE_BENCH_SINGLE_ONLY=1 skips everything else (for a per-phase profile of these steps).
const SINGLE = (process.env.KVSERVE_BENCH_SINGLE ?? '128,129,2048,2049')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const singleOnly = process.env.KVSERVE_BENCH_SINGLE_ONLY === '1';

async function singlePrefills(engine: { step(b: StepBatch): Promise<unknown> }) {
  const out: Array<{ tokens: number; ms: number }> = [];
  for (const n of SINGLE) {
    const blocks = Math.ceil(n / BLOCK);
    const times: number[] = [];
    for (let k = 0; k < 6; k++) {
      const t = performance.now();
      await engine.step(batchOf([{ id: 0, start: 0, count: n, sample: true }], blocks));
      if (k > 0) times.push(performance.now() - t);
    }
    out.push({ tokens: n, ms: median(times) });
  }
  return out;
}

async function main() {
  process.env.KVSERVE_CUDA_DEVICE_TIME ??= '1'; // read at load: StepResult.deviceMs
  const t0 = performance.now();
  const engine = await loadNative().loadEngine(
    cudaOptions(config, {
      dummyWeights: true,
      maxNumSeqs: SEQS,
      maxNumBatchedTokens: MAX_T,
      maxModelLen: 4096,
      seed: 1,
      batchInvariant,
      quantize,
      kvCacheDtype,
      gemvFuse,
    }),
  );
  const loadS = (performance.now() - t0) / 1000;
  const info = engine.info();
  if (info.numKvBlocks < SEQS * maxBlocks)
    throw new Error(`KV pool of ${info.numKvBlocks} blocks < ${SEQS * maxBlocks} needed`);

  if (singleOnly) {
    for (const r of await singlePrefills(engine))
      console.log(`single prefill ${r.tokens} tokens: ${r.ms.toFixed(2)} ms`);
    engine.dispose();
    return;
  }
  // Prefill every sequence's CTX-token prompt, MAX_T tokens per step.
  const nSeq = Math.max(...BATCHES);
  const perStep = Math.max(1, Math.floor(MAX_T / CTX));
  let prefillMs = 0;
  for (let s0 = 0; s0 < nSeq; s0 += perStep) {
    const ids = Array.from({ length: Math.min(perStep, nSeq - s0) }, (_, i) => s0 + i);
    const t = performance.now();
    await engine.step(batchOf(ids.map((id) => ({ id, start: 0, count: CTX, sample: true }))));
    prefillMs += performance.now() - t;
  }
  const rows: Array<Record<string, number>> = [];
  for (const B of BATCHES) {
    const times: number[] = [],
      native: number[] = [],
      device: number[] = [];
    for (let k = 0; k < WARMUP + STEPS; k++) {
      const b = batchOf(Array.from({ length: B }, (_, id) => ({ id, start: CTX + k, count: 1, sample: true })));
      const t = performance.now();
      const res = await engine.step(b);
      if (k < WARMUP) continue;
      times.push(performance.now() - t);
      if (res.nativeMs !== undefined) native.push(res.nativeMs);
      if (res.deviceMs !== undefined) device.push(res.deviceMs);
    }
    const ms = median(times);
    rows.push({
      batch: B,
      stepMs: ms,
      tokensPerS: (B * 1000) / ms,
      ...(native.length ? { nativeMs: median(native) } : {}),
      ...(device.length ? { deviceMs: median(device) } : {}),
    });
  }
  const singles = await singlePrefills(engine);
  engine.dispose();

  const prefillTokS = (nSeq * CTX * 1000) / prefillMs;
  const probe = batchInvariant
    ? process.env.KVSERVE_GEMM_PROBE_M || `maxNumSeqs = ${SEQS}`
    : 'per M bucket (fast mode)';
  console.log(
    `\nmodel ${config} (dummy ${info.dtype}${quantize === 'fp8' ? ', layer matrices fp8' : ''}${kvCacheDtype === 'fp8' ? ', fp8 KV cache' : ''}, ${(info.weightBytes / 2 ** 30).toFixed(1)} GiB), ${info.device}`,
  );
  console.log(
    `mode ${batchInvariant ? `--batch-invariant (GEMMs: ${info.invariantGemm})` : 'default (fast)'}; cuBLASLt algorithms picked at M = ${probe}; CUDA graphs ${process.env.KVSERVE_CUDA_GRAPHS === '0' ? 'off' : 'on'}; GEMV epilogue fusion ${gemvFuse || info.gemvFuseFp8 ? `on (${info.gemvFuseFp8 ? 'fp8' : 'bf16'} matrices; batch 1: ${info.gemvFusion || 'none'})` : 'off'}`,
  );
  console.log(
    `load ${loadS.toFixed(1)} s; KV pool ${info.numKvBlocks} blocks of ${BLOCK} tokens (${((info.numKvBlocks * info.kvBlockBytes) / 2 ** 30).toFixed(1)} GiB)`,
  );
  console.log(`prefill: ${nSeq} x ${CTX} tokens in ${MAX_T}-token steps: ${prefillTokS.toFixed(0)} tokens/s`);
  for (const r of singles)
    console.log(`one ${r.tokens}-token prompt alone (one step, first token sampled): ${r.ms.toFixed(2)} ms`);
  console.log(`decode at context ~${CTX} (median of ${STEPS} steps):`);
  console.log('batch   step ms   tokens/s');
  for (const r of rows)
    console.log(
      `${String(r.batch).padStart(5)} ${r.stepMs!.toFixed(2).padStart(9)} ${r.tokensPerS!.toFixed(0).padStart(10)}`,
    );
  for (const r of rows)
    if (r.deviceMs !== undefined && r.nativeMs !== undefined)
      console.log(
        `split at batch ${r.batch}: step ${r.stepMs!.toFixed(3)} ms = device ${r.deviceMs.toFixed(3)} + the engine thread's host work ${(r.nativeMs - r.deviceMs).toFixed(3)} + hand-offs ${(r.stepMs! - r.nativeMs).toFixed(3)} (medians)`,
      );
  if (process.env.KVSERVE_GPU_OUT)
    appendFileSync(
      resolve(process.env.KVSERVE_GPU_OUT, 'bench-engine.jsonl'),
      `${JSON.stringify({ config, device: info.device, dtype: info.dtype, quantize, kvCacheDtype, batchInvariant, invariantGemm: info.invariantGemm, gemvFuse, gemvFuseFp8: info.gemvFuseFp8, gemvFusion: info.gemvFusion, attnPrefill: info.attnPrefill, gemmProbeM: probe, graphs: process.env.KVSERVE_CUDA_GRAPHS !== '0', loadS, prefillTokS, singles, ctx: CTX, decode: rows })}\n`,
    );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
