// KVSERVE_GEMV_EVEN=1: the even GEMV (kernels/gemv_even.cu: W cut evenly over one wave of CTAs) in the engine. The
// llama bf16 model (make_bf16_references.py) is built once as an engine and its manifest copied twice: every
// weight's M <= 8 ranges pinned to gemv_even, and to the 4-row GEMV (the plain kernel, for comparison).
// - With the switch: every shape is imported, none timed; with gemvFuse on nothing fuses (the fused kernels need
//   a rows-per-CTA GEMV, and gemvRows reports 0 on the even GEMV).
// - Rows do not depend on M: 8 prompts fed one token per step (every step's GEMMs at M <= 8, so all of them the
//   even GEMV) give prompt 0 the same ids and top-5 logprob bytes as prompt 0 alone, with CUDA graphs on and off
//   (graph replays reuse the arrival counters). The attention partition is pinned (KVSERVE_ATTN_TARGET_CTAS=0).
// - Against the plain GEMV: the prefill step (M = 11, the same cuBLASLt record in both) is bitwise the same, the
//   first decode step's logits agree within 1% of their largest magnitude (only rows cut between CTAs sum in
//   another order), and greedy ids of 8 steps are recorded.
// - Without the switch: every pinned shape is refused (one line each on stderr) and timed again.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import type { EngineManifest } from '../../src/build/manifest.js';
import type { NativeEngine } from '../../src/runner/binding.js';
import { generate, greedy, type Sampling } from '../native/harness.js';
import { greedyRun } from '../native/native-run.js';
import { buildCuda, bytes, tempDir, timedLoad } from './cuda-engine-helpers.js';
import { bf16RefsDir, ensureBf16Refs, record } from './gpu-harness.js';

beforeAll(ensureBf16Refs, 600_000);

const prompt = [1, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41];
const prompts = Array.from({ length: 8 }, (_, i) => [
  1,
  ...Array.from({ length: 2 + 5 * i }, (_, j) => 3 + ((i * 97 + j * 13) % 1000)),
]);
const withLogprobs: Sampling = { ...greedy, numLogprobs: 5 };

/** A copy of `built` whose M <= 8 ranges run `kernel` (gemv_even, or gemv at 4 rows per CTA) for every weight. */
function pinned(built: string, kernel: 'gemv_even' | 'gemv'): string {
  const dir = join(tempDir(), 'engine');
  cpSync(built, dir, { recursive: true });
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(path, 'utf8')) as EngineManifest;
  let count = 0;
  for (const g of m.tunedGemms)
    if (g.mMax <= 8) {
      for (const k of ['algo', 'algoId', 'tile', 'stages', 'splitK', 'workspace', 'rowsPerCta'] as const) delete g[k];
      Object.assign(g, kernel === 'gemv' ? { kernel, rowsPerCta: 4 } : { kernel });
      ++count;
    }
  expect(count, 'M ranges up to 8 (1, 2, 3..4, 5..8 of five weights)').toBeGreaterThanOrEqual(20);
  writeFileSync(path, JSON.stringify(m));
  return dir;
}

async function load(engine: string, env: Record<string, string>, gemvFuse = false): Promise<NativeEngine> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return (await timedLoad({ engine, gemvFuse })).engine;
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Prompt 0's ids and top-5 logprob bytes, alone or among the 8, fed one token per step. */
async function tokenByToken(engine: NativeEngine, ps: number[][]) {
  const logprobs: Float32Array[] = [];
  const ids = await generate(engine, ps, {
    maxTokens: 8,
    blockSize: 16,
    maxBlocks: 8,
    prefillChunk: 1,
    sampling: ps.map(() => withLogprobs),
    onStep: (r, batch) => {
      // Prompt 0 is the first chunk while it runs (block table row 0 is slot 0's); sampled row 0 is its own
      // when its one token of the step is sampled.
      const first = batch.blockTables[0] === 0 && batch.sampleIndices[0] === batch.queryStart[1]! - 1;
      if (first) logprobs.push(r.topValues.slice(0, 5));
    },
  });
  return { ids: ids[0]!, logprobs: bytes(logprobs) };
}

describe('the even GEMV in the engine (llama-d64-g4, bf16)', () => {
  let even = '';
  let plain = '';
  beforeAll(async () => {
    const built = await buildCuda(resolve(bf16RefsDir, 'llama-d64-g4'));
    even = pinned(built, 'gemv_even');
    plain = pinned(built, 'gemv');
  }, 300_000);
  const on = { KVSERVE_GEMV_EVEN: '1', KVSERVE_ATTN_TARGET_CTAS: '0' };

  test.each([true, false])('rows do not depend on M (CUDA graphs %s); imported, nothing fuses', async (graphs) => {
    const engine = await load(even, { ...on, ...(graphs ? {} : { KVSERVE_CUDA_GRAPHS: '0' }) }, true);
    try {
      expect(engine.info()).toMatchObject({ gemmShapesImported: 5, gemmShapesPlanned: 0, gemvFusion: '' });
      const alone = await tokenByToken(engine, prompts.slice(0, 1));
      const among = await tokenByToken(engine, prompts);
      expect(among.ids).toEqual(alone.ids);
      expect(among.logprobs.equals(alone.logprobs)).toBe(true);
      record(`gemv even engine graphs ${graphs}`, { ids: alone.ids, identical: true });
    } finally {
      engine.dispose();
    }
  });

  test('against the plain GEMV: prefill bitwise, the first decode step close', async () => {
    const runs = [];
    for (const dir of [even, plain]) {
      const engine = await load(dir, on);
      try {
        runs.push(await greedyRun(engine, prompt, 8));
      } finally {
        engine.dispose();
      }
    }
    const [e, p] = runs as [Awaited<ReturnType<typeof greedyRun>>, Awaited<ReturnType<typeof greedyRun>>];
    expect(bytes([e.logits[0]!]).equals(bytes([p.logits[0]!]))).toBe(true);
    expect(e.ids[0]).toBe(p.ids[0]);
    const scale = Math.max(...Array.from(p.logits[1]!, Math.abs));
    const worst = Math.max(...Array.from(e.logits[1]!, (v, i) => Math.abs(v - p.logits[1]![i]!)));
    record('gemv even vs plain', { worst, scale, evenIds: e.ids, plainIds: p.ids });
    expect(worst).toBeLessThanOrEqual(0.01 * scale);
  });

  test('without KVSERVE_GEMV_EVEN the gemv_even records are refused and the shapes timed again', async () => {
    const engine = await load(even, { KVSERVE_GEMV_EVEN: '0' });
    try {
      expect(engine.info()).toMatchObject({ gemmShapesImported: 0, gemmShapesPlanned: 5 });
      expect((await greedyRun(engine, prompt, 4)).ids).toHaveLength(4);
    } finally {
      engine.dispose();
    }
  });
});
