// INT8 on the GPU (--quantization int8, SmoothQuant W8A8): the layer matrices the calibration made int8 with a
// float32 scale per output row (o_proj and down_proj with their input's multiplier), activations quantized per
// token, the int8 GEMV for small batches and cuBLASLt's IMMA matmul plus a dequantization otherwise.
// - Quantized at load (calibrated on random token ids: their weights are random too), the tiny random bf16
//   models stay close to transformers' bf16 logits along transformers' own greedy path (teacher forcing),
//   beside the bf16 engine's numbers: agreement >= 0.5 (a broken GEMM lands near 1/vocab) and a mean logit
//   error within 15x the bf16 engine's, the bounds of the fp8 test. These models hold every matrix in int8
//   (their K are multiples of 16), down_proj and qwen2's biased q/k/v too.
// - The same models with --batch-invariant: greedy ids and top-5 logprobs bitwise the same alone, batched and
//   chunked (int8 sums are exact, so the GEMMs may change kernel with M and the bits may not).
// - kvserve build --quantization int8 --device cuda of the demo model (stories260K, trained): the bar,
//   perplexity within 3 % of the unquantized bf16 model and top-1 agreement >= 95 %, from the manifest's
//   report and from a measurement of our own through decode steps; the engine computes bitwise what an int8
//   load of the model folder computes with the same GEMM algorithms (the calibration at load is the build's);
//   so `generate --model --quantization int8`, calibrating at load as serve does, answers with the greedy ids
//   of `generate --engine`. float32 is refused in one line.
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { packSamples } from '../../src/build/calibration-data.js';
import { ALPHA_GRID, int8Defaults, planInt8 } from '../../src/build/int8-build.js';
import type { Int8Quantization } from '../../src/build/manifest.js';
import { loadNative, type NativeQuantization } from '../../src/runner/binding.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { storiesDir } from '../native/harness.js';
import { expectBatchInvariant } from './batch-invariance.js';
import { expectEngineMatchesModel, loadError, readTensors, tempDir } from './cuda-engine-helpers.js';
import { BF16_MODELS, bf16RefsDir, cudaOptions, ensureBf16Refs, record } from './gpu-harness.js';
import {
  againstTransformers,
  buildStories,
  expectByteMatrixWithScales,
  expectStoriesQuality,
} from './quantized-engine-checks.js';

beforeAll(() => ensureBf16Refs(), 600_000);

/** kvserve build's default search on 32 samples of 128 random ids (BOS first) of a 1024-id vocabulary. */
function randomCalibration(): NativeQuantization {
  let s = 12345;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s;
  };
  const samples = Array.from({ length: 32 }, () => [1, ...Array.from({ length: 127 }, () => 3 + (next() % 1021))]);
  const d = int8Defaults();
  return {
    method: 'int8',
    calibration: packSamples(samples),
    alphas: ALPHA_GRID,
    observers: ['absmax', 'percentile'],
    tryUnsmoothed: true,
    percentile: d.percentile,
    maxLayerError: d.maxLayerError,
    keepFloat: [],
  };
}

describe.each(BF16_MODELS)('%s quantized to int8 at load', (name) => {
  const opts = () => cudaOptions(resolve(bf16RefsDir, name), { numKvBlocks: 512, maxNumSeqs: 16 });

  test('stays close to transformers bf16 (teacher-forced), beside the bf16 engine', async () => {
    const bf16 = await loadNative().loadEngine(opts());
    const bf16Bytes = bf16.info().weightBytes;
    const plain = await againstTransformers(bf16, name).finally(() => bf16.dispose());
    const int8 = await loadNative().loadEngine({ ...opts(), quantize: 'int8', quantization: randomCalibration() });
    try {
      expect(int8.info()).toMatchObject({ quantization: 'int8', dtype: 'bfloat16' });
      // Every layer matrix in one byte per weight (plus a scale per row): the weights shrink by almost half.
      expect(int8.info().weightBytes).toBeLessThan(0.8 * bf16Bytes);
      const q = await againstTransformers(int8, name);
      record(`int8 ${name}`, { int8: q, bf16: plain });
      expect(q.agreement).toBeGreaterThanOrEqual(0.5);
      expect(q.meanAbsLogitErr).toBeLessThan(15 * plain.meanAbsLogitErr);
    } finally {
      int8.dispose();
    }
  });

  test('--batch-invariant: the same bits alone, batched and chunked', async () => {
    const engine = await loadNative().loadEngine({
      ...opts(),
      quantize: 'int8',
      quantization: randomCalibration(),
      batchInvariant: true,
    });
    try {
      expect(engine.info().quantization).toBe('int8');
      record(`int8 batch invariance ${name}`, { ...(await expectBatchInvariant(engine)), identical: true });
    } finally {
      engine.dispose();
    }
  });
});

describe('kvserve build --quantization int8 --device cuda of stories260K', () => {
  const dir = join(tempDir('kvserve-int8-'), 'stories-int8');
  let q: Int8Quantization;

  beforeAll(async () => {
    const m = await buildStories('int8', dir, 'float');
    expect(m.target.device).toBe('cuda');
    q = m.quantization as Int8Quantization;
  }, 600_000);

  test('the file holds q/k/v, o and gate/up in I8 with a float32 scale per row, o_proj with act_smooth where smoothed', () => {
    const tensors = readTensors(dir);
    const smoothing = new Map(q.layers.map((l) => [l.name, l.smoothing]));
    for (let l = 0; l < 5; l++) {
      for (const [fused, member] of [
        ['self_attn.qkv_proj', 'self_attn.q_proj'],
        ['self_attn.o_proj', 'self_attn.o_proj'],
        ['mlp.gate_up_proj', 'mlp.gate_proj'],
      ]) {
        const n = `model.layers.${l}.${fused}.weight`;
        expectByteMatrixWithScales(tensors, n, 'I8');
        const smooth = tensors.get(`model.layers.${l}.${fused}.act_smooth`);
        expect(smooth !== undefined, n).toBe(smoothing.get(`model.layers.${l}.${member}`) === 'act');
      }
      // K = 172: kept in bf16 (the int8 GEMV reads rows of a multiple of 16 bytes), as the report says.
      expect(tensors.get(`model.layers.${l}.mlp.down_proj.weight`)!.dtype).toBe('BF16');
    }
    expect(tensors.get('model.embed_tokens.weight')!.dtype).toBe('BF16');
    expect(q.keptInFloat.map((k) => k.name)).toEqual(
      expect.arrayContaining(['lm_head', 'model.layers.0.mlp.down_proj']),
    );
    expect(q.kernel).toMatch(/^cuda: gemv_int8/);
  });

  test('perplexity within 3 % of the unquantized model and top-1 agreement >= 95 % (issue #12), as the manifest says', async () => {
    // Decode steps (one token each: the int8 GEMV) here, prefill steps (cuBLASLt) in the build.
    // For comparison (this repository's CPU build, 2026-12-02): stories260K int8 on the CPU (every matrix and
    // lm_head int8, float32) reached perplexity +0.12 % and top-1 agreement 97.45 % against float32.
    await expectStoriesQuality(dir, q.quality!, 'int8 stories260K engine');
  });

  test('the engine computes bitwise what an int8 load of the model computes with the same GEMMs', async () => {
    const plan = await planInt8(int8Defaults(), {
      dir: storiesDir,
      configPath: join(storiesDir, 'config.json'),
      dummy: false,
      maxModelLen: 0,
    });
    const loads = await expectEngineMatchesModel(
      { model: storiesDir, dtype: 'bfloat16', quantize: 'int8', quantization: plan.request },
      dir,
      { quantization: 'int8', gemmShapesPlanned: 0 },
    );
    record('int8 stories260K engine load', loads);
  });

  test('generate --model --quantization int8, calibrated at load, answers with the ids of generate --engine', async () => {
    // The load calibrates as the build did (loadOptions: kvserve build's defaults) and, given the engine's GEMM
    // algorithms (KVSERVE_GEMM_TUNED), computes what the engine computes.
    const args = ['--prompt', 'Once upon a time', '--max-tokens', '24', '--ignore-eos', '--json'];
    const fromEngine = await kvserve(['generate', '--engine', dir, ...args]);
    const fromModel = await kvserve(
      ['generate', '--model', storiesDir, '--device', 'cuda', '--dtype', 'bfloat16', '--quantization', 'int8', ...args],
      { ...process.env, KVSERVE_GEMM_TUNED: dir },
    );
    expect(fromEngine.code, fromEngine.stderr).toBe(0);
    expect(fromModel.code, fromModel.stderr).toBe(0);
    const ids = (r: { stdout: string }) => (JSON.parse(r.stdout) as { output_ids: number[] }).output_ids;
    expect(ids(fromEngine)).toHaveLength(24);
    expect(ids(fromModel)).toEqual(ids(fromEngine));
  });

  test('float32 is refused in one line', async () => {
    expect(
      await loadError({ model: storiesDir, dtype: 'float32', quantize: 'int8', quantization: randomCalibration() }),
    ).toMatch(/^quantization int8 computes in bfloat16 or float16, not float32: pass --dtype bfloat16$/);
  });
});
