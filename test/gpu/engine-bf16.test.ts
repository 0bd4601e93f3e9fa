// The CUDA engine in bfloat16 against transformers in bfloat16 on the same GPU (tiny random Llama / Qwen2 /
// Qwen3 made by make_bf16_references.py at the start of the run), and batch invariance.
//
// Both sides round every activation to bf16 but accumulate in different orders (cuBLASLt vs cuBLAS tiles,
// our attention vs eager attention), so logits differ by a few bf16 ulps and greedy paths may part after a
// near-tie. Measured and recorded: teacher-forced top-1 agreement along transformers' own path, max and mean
// |logit error|, and the free-running greedy prefix that matches. Required: agreement >= 0.9 and
// max |logit error| < 1 (logits here span about +-10); the measured values are in docs/cuda.md. The same for
// --batch-invariant with our own GEMMs (invariantGemm 'own', kernels/gemm_inv.cu; 'wgmma', kernels/gemm_wgmma.cu;
// 'hybrid', gemm_inv up to M = 16 and wgmma beyond,
// on Hopper), and batch invariance with every GEMM of that mode (cuBLASLt's one algorithm per shape, or ours).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadNative, type NativeEngine, type NativeEngineOptions } from '../../src/runner/binding.js';
import { generate, greedy, type Sampling } from '../native/harness.js';
import { greedyRun } from '../native/native-run.js';
import { expectBatchInvariant, invariancePrompts } from './batch-invariance.js';
import { argmax, BF16_MODELS, bf16RefsDir, cudaOptions, ensureBf16Refs, record } from './gpu-harness.js';

const refsDir = bf16RefsDir;
const MODELS = BF16_MODELS;

interface Ref {
  prompts: number[][];
  steps: number;
  greedy_ids: number[][];
  logits_file: string;
  logits_shape: [number, number, number];
  head_dim: number;
}

beforeAll(ensureBf16Refs, 600_000);

async function load(name: string, overrides = {}): Promise<NativeEngine> {
  return loadNative().loadEngine(
    cudaOptions(resolve(refsDir, name), { numKvBlocks: 512, maxNumSeqs: 16, ...overrides }),
  );
}

// The default (fast) mode, and --batch-invariant with our own GEMMs.
const GEMMS: Array<{ mode: string; options: Partial<NativeEngineOptions> }> = [
  { mode: 'fast', options: {} },
  { mode: 'batch-invariant own GEMM', options: { batchInvariant: true, invariantGemm: 'own' } },
  { mode: 'batch-invariant wgmma GEMM', options: { batchInvariant: true, invariantGemm: 'wgmma' } },
  { mode: 'batch-invariant hybrid GEMM', options: { batchInvariant: true, invariantGemm: 'hybrid' } },
];

describe.each(MODELS)('%s (bf16) vs transformers bf16 on the same GPU', (name) => {
  test.each(GEMMS)('logit error and greedy agreement ($mode)', async ({ options }) => {
    const ref = JSON.parse(readFileSync(resolve(refsDir, name, 'expected.json'), 'utf8')) as Ref;
    const buf = readFileSync(resolve(refsDir, name, ref.logits_file));
    const theirs = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const [, steps, vocab] = ref.logits_shape;
    const engine = await load(name, options);
    try {
      expect(engine.info().dtype).toBe('bfloat16');
      if (options.invariantGemm) expect(engine.info().invariantGemm).toBe(options.invariantGemm);
      let agree = 0,
        maxErr = 0,
        sumErr = 0,
        n = 0,
        exactPaths = 0,
        matchedPrefix = 0;
      for (let p = 0; p < ref.prompts.length; p++) {
        const forced = await greedyRun(engine, ref.prompts[p]!, steps, ref.greedy_ids[p]!);
        for (let s = 0; s < steps; s++) {
          const t = theirs.subarray((p * steps + s) * vocab, (p * steps + s + 1) * vocab);
          const m = forced.logits[s]!;
          for (let v = 0; v < vocab; v++) {
            const d = Math.abs(m[v]! - t[v]!);
            maxErr = Math.max(maxErr, d);
            sumErr += d;
            n++;
          }
          if (argmax(m) === argmax(t)) agree++;
        }
        const free = await greedyRun(engine, ref.prompts[p]!, steps);
        let k = 0;
        while (k < steps && free.ids[k] === ref.greedy_ids[p]![k]) k++;
        matchedPrefix += k;
        if (k === steps) exactPaths++;
      }
      const agreement = agree / (ref.prompts.length * steps);
      record(`bf16 ${name}${options.invariantGemm ? ` (batch-invariant, ${options.invariantGemm} GEMM)` : ''}`, {
        headDim: ref.head_dim,
        teacherForcedTop1Agreement: agreement,
        maxAbsLogitErr: maxErr,
        meanAbsLogitErr: sumErr / n,
        greedyPathsIdentical: `${exactPaths}/${ref.prompts.length}`,
        meanMatchedGreedyPrefix: matchedPrefix / ref.prompts.length,
        steps,
      });
      expect(agreement).toBeGreaterThanOrEqual(0.9);
      expect(maxErr).toBeLessThan(1);
    } finally {
      engine.dispose();
    }
  });
});

// --batch-invariant mode: the default (fast) mode's GEMMs pick algorithms by M, so only this mode promises
// bitwise equality whatever else is in the batch; with cuBLASLt's one algorithm per shape, and with our own GEMMs
// (invariantGemm 'own', 'wgmma' and 'hybrid': one fixed k-reduction per shape, tiles by M). Each named explicitly, whatever
// KVSERVE_INVARIANT_GEMM says.
describe.each(['cublaslt', 'own', 'wgmma', 'hybrid'] as const)(
  'batch invariance (bf16, batchInvariant mode, %s GEMMs)',
  (invariantGemm) => {
    const prompts = invariancePrompts;

    test.each(['qwen3-d128-g8-qknorm', 'llama-d64-g4'])(
      '%s: greedy ids and top-5 logprobs do not depend on the batch',
      async (name) => {
        const engine = await load(name, { batchInvariant: true, invariantGemm });
        try {
          expect(engine.info().invariantGemm).toBe(invariantGemm);
          record(`batch invariance ${name} ${invariantGemm}`, {
            ...(await expectBatchInvariant(engine)),
            identical: true,
          });
        } finally {
          engine.dispose();
        }
      },
    );

    test('seeded sampling gives the same tokens alone and batched', async () => {
      const engine = await load('llama-d64-g4', { batchInvariant: true, invariantGemm });
      try {
        const sampling = prompts.map(
          (_, i): Sampling => ({
            ...greedy,
            temperature: 0.9,
            topP: 0.9,
            topK: i % 2 ? 40 : 0,
            minP: i % 3 === 0 ? 0.02 : 0,
            seed: 1000 + i,
            repetitionPenalty: i % 4 === 1 ? 1.2 : 1,
          }),
        );
        const o = { maxTokens: 16, blockSize: 16, maxBlocks: 16 };
        const alone: number[][] = [];
        for (const [i, p] of prompts.entries())
          alone.push((await generate(engine, [p], { ...o, sampling: [sampling[i]!] }))[0]!);
        const all = await generate(engine, prompts, { ...o, sampling });
        expect(all).toEqual(alone);
        expect(new Set(alone.map((a) => a.join(','))).size).toBeGreaterThan(1);
      } finally {
        engine.dispose();
      }
    });
  },
);
