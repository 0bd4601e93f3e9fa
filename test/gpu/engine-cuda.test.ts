// kvserve build --device cuda on the GPU. An engine of each tiny model (the bf16 models of
// make_bf16_references.py, one of them converted to float16 at build, and stories260K in float32) computes
// bitwise what a load of its model folder computes when both use the same GEMM algorithms
// (KVSERVE_GEMM_TUNED gives the model folder the engine's): the same weights (fused and converted on the
// device at build exactly as at a load, then copied back as they lie) and the same kernels. Its load restores
// the tuned GEMMs instead of timing them, and times again, saying why, a shape whose record cuBLASLt rejects.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { readManifest, type EngineManifest } from '../../src/build/manifest.js';
import { type DTypeName, loadNative, type NativeEngine } from '../../src/runner/binding.js';
import { writeSyntheticTokenizer } from '../../src/tokenizer/synthetic.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { generate, greedy, storiesDir, type Sampling } from '../native/harness.js';
import { greedyRun } from '../native/native-run.js';
import { serveCompletion } from '../server/helpers/child-server.js';
import { buildCuda, bytes, PROFILE, readTensors, tempDir, timedLoad } from './cuda-engine-helpers.js';
import { bf16RefsDir, cudaOptions, ensureBf16Refs, record } from './gpu-harness.js';

beforeAll(ensureBf16Refs, 600_000);

const WEIGHTS = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'lm_head'];
const prompt = [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41];
const prompts = Array.from({ length: 8 }, (_, i) => [
  1,
  ...Array.from({ length: 3 + 29 * i }, (_, j) => 3 + ((i * 131 + j * 17) % 250)),
]);
const withLogprobs: Sampling = { ...greedy, numLogprobs: 5 };

/** Greedy ids and logits of one prompt, then 8 prompts batched with their top-5 logprobs; disposes the engine. */
async function outputs(engine: NativeEngine) {
  try {
    const one = await greedyRun(engine, prompt, 12);
    const logprobs: Float32Array[] = [];
    const ids = await generate(engine, prompts, {
      maxTokens: 12,
      blockSize: 16,
      maxBlocks: 24,
      sampling: prompts.map(() => withLogprobs),
      onStep: (r) => logprobs.push(r.topValues.slice()),
    });
    return { one, ids, logprobs: bytes(logprobs) };
  } finally {
    engine.dispose();
  }
}

function checkTunedGemms(m: EngineManifest) {
  // GEMMs are planned per weight shape: an lm_head of the same [n, k] as a layer weight (the qwen2
  // fixture's tied [vocab, hidden] is [1024, 512], as its fused q/k/v) shares that weight's plan, which
  // covers every token of a step.
  const shape = (w: string) => m.tunedGemms.filter((g) => g.weight === w).map((g) => `${g.n}x${g.k}`)[0];
  const lmHeadShared = WEIGHTS.some((w) => w !== 'lm_head' && shape(w) === shape('lm_head'));
  for (const w of WEIGHTS) {
    const ranges = m.tunedGemms.filter((g) => g.weight === w);
    expect(ranges.length, w).toBeGreaterThan(0);
    expect(ranges.map((g) => g.mMin)).toEqual([1, ...ranges.slice(0, -1).map((g) => g.mMax + 1)]);
    expect(ranges.at(-1)!.mMax).toBe(
      w === 'lm_head' && !lmHeadShared ? PROFILE.maxNumSeqs : PROFILE.maxNumBatchedTokens,
    );
    for (const g of ranges) {
      if (g.kernel === 'gemv') expect([1, 2, 4]).toContain(g.rowsPerCta);
      else if (g.kernel === 'gemv_fp8') expect([16, 32, 64]).toContain(g.rowsPerCta);
      // KVSERVE_GEMV_EVEN=1 builds: the even GEMV has no rows per CTA
      else if (g.kernel === 'gemv_even') expect(g.rowsPerCta).toBeUndefined();
      else expect(g.algo).toMatch(/^[0-9a-f]{128}$/);
    }
  }
  // The GEMV kernel serves bf16/f16 only; float32 is cuBLASLt throughout.
  if (m.weights.dtype === 'float32') expect(m.tunedGemms.every((g) => g.kernel === 'cublasLt')).toBe(true);
}

const cases: Array<[string, string, 'auto' | DTypeName]> = [
  ['llama-d64-g4', resolve(bf16RefsDir, 'llama-d64-g4'), 'auto'],
  ['qwen2-d128-g2-bias (bias, tied)', resolve(bf16RefsDir, 'qwen2-d128-g2-bias'), 'auto'],
  ['qwen3-d128-g8-qknorm', resolve(bf16RefsDir, 'qwen3-d128-g8-qknorm'), 'auto'],
  ['llama-d64-g4 as float16', resolve(bf16RefsDir, 'llama-d64-g4'), 'float16'],
  ['stories260K (float32)', storiesDir, 'auto'],
];

describe("a CUDA engine's model.safetensors", () => {
  // The checkpoints are bf16 and the engine is built as bf16: the device holds the checkpoint's bytes,
  // stacked, and the engine file must hold exactly them.
  test.each(['llama-d64-g4', 'qwen2-d128-g2-bias'])(
    "holds %s's bytes, q/k/v and gate/up stacked row-wise",
    async (name) => {
      const model = resolve(bf16RefsDir, name);
      const dir = await buildCuda(model);
      const hf = readTensors(model);
      const built = readTensors(dir);
      const stack = (names: string[]) => Buffer.concat(names.map((n) => hf.get(n)!.bytes));
      const expected = new Map<string, Buffer>();
      for (const n of hf.keys()) {
        const m = /^(model\.layers\.\d+\.)(self_attn\.[qkv]_proj|mlp\.(gate|up)_proj)\.(weight|bias)$/.exec(n);
        if (!m) {
          if (!(n === 'lm_head.weight' && !built.has(n))) expected.set(n, hf.get(n)!.bytes);
          continue;
        }
        const [, layer, proj, , kind] = m;
        if (proj!.startsWith('self_attn'))
          expected.set(
            `${layer}self_attn.qkv_proj.${kind}`,
            stack(['q', 'k', 'v'].map((x) => `${layer}self_attn.${x}_proj.${kind}`)),
          );
        else
          expected.set(
            `${layer}mlp.gate_up_proj.weight`,
            stack([`${layer}mlp.gate_proj.weight`, `${layer}mlp.up_proj.weight`]),
          );
      }
      expect([...built.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [n, t] of built) {
        expect(t.dtype, n).toBe('BF16');
        expect(t.bytes.equals(expected.get(n)!), n).toBe(true);
      }
      // Tied (qwen2): the embedding serves as lm_head and is written once.
      expect(built.has('lm_head.weight')).toBe(name !== 'qwen2-d128-g2-bias');
    },
  );
});

describe('a CUDA engine computes what its model computes, bitwise', () => {
  test.each(cases)('%s', async (name, model, dtype) => {
    const t0 = performance.now();
    const dir = await buildCuda(model, dtype);
    const buildMs = performance.now() - t0;
    const m = readManifest(dir);
    expect(m.target).toMatchObject({ device: 'cuda', features: [] });
    expect(m.target.arch).toMatch(/^sm_\d+$/);
    expect(m.target.arch).toBe(`sm_${m.target.computeCapability!.replace('.', '')}`);
    expect(m.target.gpuName).toMatch(/\S/);
    expect(m.target.smCount).toBeGreaterThan(0);
    expect(m.target.cublasLtVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(m.target.cudaRuntimeVersion).toMatch(/^\d+\.\d+$/);
    checkTunedGemms(m);
    expect(m.timings.tune).toBeGreaterThan(0);

    const direct = await timedLoad({ model, dtype }, dir);
    expect(direct.engine.info()).toMatchObject({ gemmShapesImported: 5, gemmShapesPlanned: 0 });
    const fromModel = await outputs(direct.engine);
    const loaded = await timedLoad({ engine: dir });
    // Loading the engine times no GEMM: all five shapes come from its manifest.
    expect(loaded.engine.info()).toMatchObject({ dtype: m.weights.dtype, gemmShapesImported: 5, gemmShapesPlanned: 0 });
    const fromEngine = await outputs(loaded.engine);
    expect(fromEngine.one.ids).toEqual(fromModel.one.ids);
    expect(bytes(fromEngine.one.logits).equals(bytes(fromModel.one.logits))).toBe(true);
    expect(fromEngine.ids).toEqual(fromModel.ids);
    expect(fromEngine.logprobs.equals(fromModel.logprobs)).toBe(true);
    record(`cuda engine ${name}`, {
      dtype: m.weights.dtype,
      tensors: m.weights.tensors,
      tunedRanges: m.tunedGemms.length,
      buildMs,
      timings: m.timings,
      modelLoadMsWithEngineGemms: direct.ms,
      engineLoadMs: loaded.ms,
    });
  });

  test('a model folder times its own GEMMs; --batch-invariant ignores the tuned ones and still matches bitwise', async () => {
    const model = resolve(bf16RefsDir, 'qwen3-d128-g8-qknorm');
    const dir = await buildCuda(model);
    const timed = await timedLoad({ model });
    expect(timed.engine.info()).toMatchObject({ gemmShapesImported: 0, gemmShapesPlanned: 5 });
    timed.engine.dispose();
    const direct = await timedLoad({ model, batchInvariant: true });
    const loaded = await timedLoad({ engine: dir, batchInvariant: true });
    expect(loaded.engine.info()).toMatchObject({ gemmShapesImported: 0, gemmShapesPlanned: 5 });
    const [a, b] = [await outputs(direct.engine), await outputs(loaded.engine)];
    expect(b.ids).toEqual(a.ids);
    expect(bytes(b.one.logits).equals(bytes(a.one.logits))).toBe(true);
    expect(b.logprobs.equals(a.logprobs)).toBe(true);
  });
});

describe('kvserve build / generate --engine --device cuda as a user runs them (stories260K)', () => {
  test("generate --engine gives the model folder's greedy ids with the same GEMMs, and transformers'; serve --engine answers", async () => {
    const expected = JSON.parse(readFileSync(join(storiesDir, 'expected.json'), 'utf8')) as Array<{
      prompt: string;
      greedy_ids: number[];
    }>;
    const dir = join(tempDir(), 'stories-cuda');
    const built = await kvserve(['build', '--model', storiesDir, '--device', 'cuda', '--out', dir]);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).toMatch(new RegExp(`kvserve: built ${dir} \\(float32, cuda sm_\\d+ `));
    expect(built.stderr).toMatch(/building: tune 100%/);
    const info = await kvserve(['engine-info', dir]);
    expect(info.stdout).toMatch(
      /^target +cuda sm_\d+: .+ \(compute capability \d+\.\d+, \d+ SMs\), driver .+, cuBLASLt \d+/m,
    );
    expect(info.stdout).toMatch(
      /^ {2}qkv_proj \[\d+, \d+\] M 1\.\.1: cuBLASLt algo \d+, tile \d+, stages \d+, split-K \d+$/m,
    );
    const args = ['--prompt', expected[0]!.prompt, '--max-tokens', '40', '--ignore-eos', '--json'];
    const fromEngine = await kvserve(['generate', '--engine', dir, ...args]);
    const fromModel = await kvserve(['generate', '--model', storiesDir, '--device', 'cuda', ...args], {
      ...process.env,
      KVSERVE_GEMM_TUNED: dir,
    });
    expect(fromEngine.code, fromEngine.stderr).toBe(0);
    expect(fromModel.code, fromModel.stderr).toBe(0);
    const ids = (r: { stdout: string }) => (JSON.parse(r.stdout) as { output_ids: number[] }).output_ids;
    expect(ids(fromEngine)).toEqual(ids(fromModel));
    expect(ids(fromEngine)).toEqual(expected[0]!.greedy_ids.slice(0, 40));

    const { ready, answer } = await serveCompletion(['--device', 'cuda', '--engine', dir], {
      model: 'stories-cuda',
      prompt: expected[1]!.prompt,
      max_tokens: 40,
      temperature: 0,
      ignore_eos: true,
    });
    expect(ready).toMatchObject({ device: expect.stringMatching(/^cuda:0/) });
    const body = answer as { usage: { completion_tokens: number }; choices: Array<{ text: string }> };
    expect(body.usage.completion_tokens).toBe(40);
    expect(body.choices[0]!.text.length).toBeGreaterThan(0);
  });

  test('a shape whose tuned record cannot be restored is timed again, in one line saying why', async () => {
    const model = resolve(bf16RefsDir, 'llama-d64-g4');
    const bf16 = await buildCuda(model);
    const f32 = readManifest(await buildCuda(model, 'float32'));
    const dir = join(tempDir(), 'engine');
    cpSync(bf16, dir, { recursive: true });
    writeSyntheticTokenizer(dir, 1024);
    // qkv_proj: the float32 engine's algorithms (cuBLASLt rejects them for bf16); o_proj: a damaged algo.
    const path = join(dir, 'manifest.json');
    const m = JSON.parse(readFileSync(path, 'utf8')) as EngineManifest;
    m.tunedGemms = [
      ...f32.tunedGemms.filter((g) => g.weight === 'qkv_proj'),
      ...m.tunedGemms.filter((g) => g.weight !== 'qkv_proj'),
    ];
    const o = m.tunedGemms.find((g) => g.weight === 'o_proj' && g.kernel === 'cublasLt')!;
    o.algo = 'not hex';
    writeFileSync(path, JSON.stringify(m));
    const { engine } = await timedLoad({ engine: dir });
    expect(engine.info()).toMatchObject({ gemmShapesImported: 3, gemmShapesPlanned: 2 });
    expect((await outputs(engine)).ids.every((ids) => ids.length === 12)).toBe(true);
    const r = await kvserve(['generate', '--engine', dir, '--prompt', 'w5 w9 w13', '--max-tokens', '4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('kvserve: engine '));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      new RegExp(
        `^kvserve: engine ${dir}: cannot restore the tuned GEMM of qkv_proj \\[\\d+, 512\\]: M 1: cuBLASLt rejects the algorithm at M 1 \\(CUBLAS_STATUS_\\w+\\); timed it again$`,
      ),
    );
    expect(lines[1]).toMatch(
      /cannot restore the tuned GEMM of o_proj \[512, 512\]: M \d+(\.\.\d+)?: algo is not 128 hex digits; timed it again$/,
    );
  });
});

describe('KVSERVE_CUDA_DEVICE_TIME (read at load)', () => {
  test("=1: every step's result has its device span, positive and within the engine thread's time; unset: none", async () => {
    const model = resolve(bf16RefsDir, 'llama-d64-g4');
    for (const on of [true, false]) {
      if (on) process.env.KVSERVE_CUDA_DEVICE_TIME = '1';
      const engine = await loadNative()
        .loadEngine(cudaOptions(model, { numKvBlocks: 256, maxNumSeqs: 8 }))
        .finally(() => delete process.env.KVSERVE_CUDA_DEVICE_TIME);
      const spans: Array<[number | undefined, number | undefined]> = [];
      try {
        // prefill steps, then decode steps (graphed: the span covers the graph launch too)
        await generate(engine, prompts.slice(0, 3), {
          maxTokens: 4,
          blockSize: 16,
          maxBlocks: 24,
          sampling: prompts.slice(0, 3).map(() => greedy),
          onStep: (r) => spans.push([r.deviceMs, r.nativeMs]),
        });
      } finally {
        engine.dispose();
      }
      expect(spans.length).toBeGreaterThanOrEqual(4);
      for (const [device, native] of spans) {
        if (!on) {
          expect(device).toBeUndefined();
          continue;
        }
        expect(device).toBeGreaterThan(0);
        expect(device!).toBeLessThanOrEqual(native!);
      }
    }
  });
});
