// How long a CUDA engine takes to build and to load, against loading its model: Llama-3-8B's shape with dummy
// bf16 weights (configs/llama-3-8b.json; load time depends on the bytes, not the values), built by kvserve
// build's native writer into an engine (weights copied back from the GPU, GEMMs timed once), then loaded
// from the page cache (the build just wrote it) several times, with 1, 4, 8 and 16 upload threads.
// The "model" rows load the dummy model itself: weights generated on the device (no bytes to move), every
// GEMM timed. A benchmark, not a test: it prints a table (and appends JSON to bench-engine-load.jsonl when
// KVSERVE_GPU_OUT is set). Needs about 16 GB of free disk for the engine, removed at the end
// (KVSERVE_KEEP_ENGINE=DIR keeps it there instead).
// Usage: npx tsx test/gpu/bench-engine-load.ts [config.json]
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildEngineFolder } from '../../src/build/build-engine.js';
import type { OptimizationProfile } from '../../src/build/manifest.js';
import { loadNative, type NativeEngineOptions } from '../../src/runner/binding.js';
import { cudaOptions, repoRoot } from './gpu-harness.js';

const config = process.argv[2] ?? resolve(repoRoot, 'configs', 'llama-3-8b.json');
const profile: OptimizationProfile = { maxNumSeqs: 256, maxNumBatchedTokens: 8192, maxModelLen: 4096 };
const REPEATS = 3;

interface Load {
  what: string;
  totalS: number;
  weightsS: number; // from the first weights report to the last
  backendS: number; // what follows: GEMM plans (timed or restored), KV cache, sampler
  imported: number;
  planned: number;
  gib: number;
}

async function timedLoad(what: string, o: NativeEngineOptions): Promise<Load> {
  const marks: Record<string, number> = {};
  const t0 = performance.now();
  const engine = await loadNative().loadEngine(o, (stage, f) => {
    const now = performance.now();
    if (f === 0 && marks[`${stage}0`] === undefined) marks[`${stage}0`] = now;
    if (f === 1) marks[`${stage}1`] = now;
  });
  const totalS = (performance.now() - t0) / 1000;
  const info = engine.info();
  engine.dispose();
  const span = (stage: string) => ((marks[`${stage}1`] ?? 0) - (marks[`${stage}0`] ?? 0)) / 1000;
  return {
    what,
    totalS,
    weightsS: span('weights'),
    backendS: span('backend'),
    imported: info.gemmShapesImported,
    planned: info.gemmShapesPlanned,
    gib: info.weightBytes / 2 ** 30,
  };
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'kvserve-dummy-8b-'));
  const model = join(work, 'model');
  mkdirSync(model);
  copyFileSync(config, join(model, 'config.json'));
  const engine = process.env.KVSERVE_KEEP_ENGINE ?? join(work, 'engine');
  const base = cudaOptions(model, {
    maxNumSeqs: profile.maxNumSeqs,
    maxNumBatchedTokens: profile.maxNumBatchedTokens,
    maxModelLen: profile.maxModelLen,
  });
  try {
    const t0 = performance.now();
    const manifest = await buildEngineFolder({
      model,
      modelDir: model,
      revision: null,
      out: engine,
      device: 'cuda',
      dtype: 'bfloat16',
      quantization: 'none',
      threads: 0,
      profile,
      dummy: { seed: 1 },
    });
    const buildS = (performance.now() - t0) / 1000;

    const loads: Load[] = [];
    for (let i = 0; i < REPEATS; i++)
      loads.push(
        await timedLoad('model (dummy: generated on the GPU, GEMMs timed)', {
          ...base,
          dummyWeights: true,
          dtype: 'bfloat16',
        }),
      );
    for (const threads of ['8 (default)', '1', '4', '16']) {
      process.env.KVSERVE_UPLOAD_THREADS = threads.split(' ')[0];
      for (let i = 0; i < REPEATS; i++)
        loads.push(await timedLoad(`engine, ${threads} upload threads`, { ...base, model: '', engine }));
    }
    delete process.env.KVSERVE_UPLOAD_THREADS;

    const t = manifest.target;
    console.log(
      `\n${config}: dummy bf16, ${(manifest.weights.bytes / 2 ** 30).toFixed(2)} GiB, ${manifest.weights.tensors} tensors`,
    );
    console.log(
      `${t.gpuName} (${t.arch}, ${t.smCount} SMs), driver ${t.driverVersion}, CUDA ${t.cudaRuntimeVersion}, cuBLASLt ${t.cublasLtVersion}`,
    );
    console.log(
      `profile: max-num-seqs ${profile.maxNumSeqs}, max-num-batched-tokens ${profile.maxNumBatchedTokens}, max-model-len ${profile.maxModelLen}`,
    );
    const timings = Object.entries(manifest.timings).map(([k, v]) => `${k} ${v.toFixed(2)} s`);
    console.log(`build: ${buildS.toFixed(2)} s (${timings.join(', ')}); ${manifest.tunedGemms.length} tuned M ranges`);
    console.log(
      '\nload                                                 total s  weights s  GB/s  backend s  GEMM shapes imported/planned',
    );
    for (const l of loads)
      console.log(
        `${l.what.padEnd(52)} ${l.totalS.toFixed(2).padStart(7)} ${l.weightsS.toFixed(2).padStart(10)} ` +
          `${(l.weightsS > 0 ? (l.gib * 2 ** 30) / 1e9 / l.weightsS : 0).toFixed(1).padStart(5)} ` +
          `${l.backendS.toFixed(2).padStart(10)}  ${l.imported}/${l.planned}`,
      );
    if (process.env.KVSERVE_GPU_OUT)
      appendFileSync(
        resolve(process.env.KVSERVE_GPU_OUT, 'bench-engine-load.jsonl'),
        `${JSON.stringify({ config, target: t, profile, buildS, timings: manifest.timings, loads })}\n`,
      );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
