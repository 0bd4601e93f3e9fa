// An int8 engine of stories260K: its quality against the unquantized model (perplexity within 3 % and top-1
// agreement at least 95 % on the shipped held-out text, recomputed here token by token through decode steps
// instead of the build's prefill steps, and equal to what the manifest says), and its weights file read by
// code independent of the native writer: every int8 matrix is the float one, smoothed by the factors its
// folded norm (or act_smooth) implies, quantized per output row to within half a step, packed as documented.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { defaultEvalData, readTextSamples, tokenizeSamples } from '../../src/build/calibration-data.js';
import type { EngineManifest, Int8Quantization } from '../../src/build/manifest.js';
import { loadNative, type NativeEngineOptions } from '../../src/runner/binding.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { greedyRun } from '../native/native-run.js';
import { buildInt8Into, nativeOptions, storiesDir } from './engine-helpers.js';
import { readTensors, type RawTensor } from './safetensors-reader.js';

const native = loadNative();
let dir: string;
let manifest: EngineManifest;
let q: Int8Quantization;

beforeAll(async () => {
  ({ dir, manifest } = await buildInt8Into(storiesDir));
  if (manifest.quantization.method !== 'int8') throw new Error('not an int8 engine');
  q = manifest.quantization;
});

/** Σ -log p(next) and top-1 ids over every position of every sample, one decode step per token. */
async function teacherForced(opts: NativeEngineOptions, samples: number[][]) {
  const engine = await native.loadEngine(opts);
  try {
    let nll = 0;
    const top1: number[] = [];
    for (const ids of samples) {
      const { logits } = await greedyRun(engine, [ids[0]!], ids.length - 1, ids.slice(1));
      for (const [i, row] of logits.entries()) {
        let max = Number.NEGATIVE_INFINITY,
          arg = 0;
        for (const [v, x] of row.entries())
          if (x > max) {
            max = x;
            arg = v;
          }
        let sum = 0;
        for (const x of row) sum += Math.exp(x - max);
        nll += Math.log(sum) + max - row[ids[i + 1]!]!;
        top1.push(arg);
      }
    }
    return { nll, top1 };
  } finally {
    engine.dispose();
  }
}

describe('quality of the int8 stories260K engine', () => {
  test('perplexity within 3 % of float and top-1 agreement >= 95 %, as the manifest says', async () => {
    const tok = await TextTokenizer.load(storiesDir);
    const samples = tokenizeSamples(tok, readTextSamples(defaultEvalData, '--eval-data'), 512);
    const float = await teacherForced(nativeOptions({ model: storiesDir }), samples);
    const int8 = await teacherForced(nativeOptions({ engine: dir }), samples);
    const n = float.top1.length;
    const pFloat = Math.exp(float.nll / n),
      pInt8 = Math.exp(int8.nll / n);
    const agreement = float.top1.filter((id, i) => id === int8.top1[i]).length / n;
    expect(n).toBeGreaterThan(1000);
    expect(pInt8 / pFloat).toBeLessThan(1.03);
    expect(agreement).toBeGreaterThanOrEqual(0.95);
    // The build measured the same engine on the same text through prefill steps: the same numbers.
    expect(q.quality).not.toBeNull();
    expect(q.quality!.tokens).toBe(n);
    expect(q.quality!.perplexity.float).toBeCloseTo(pFloat, 6);
    expect(q.quality!.perplexity.quantized).toBeCloseTo(pInt8, 6);
    expect(q.quality!.top1Agreement).toBeCloseTo(agreement, 9);
  });

  test('the manifest records the method, the calibration and every layer', () => {
    expect(q.kernel).toBe(native.engineTarget().features.includes('avx512vnni') ? 'avx512-vnni' : q.kernel);
    expect(q.calibration).toMatchObject({ samples: 20, file: expect.stringMatching(/stories-calib\.txt$/) });
    expect(q.calibration.tokens).toBeGreaterThan(2000);
    expect(q.calibration.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(q.layers.map((l) => l.name)).toHaveLength(5 * 7 + 1);
    expect(q.layers.at(-1)!.name).toBe('lm_head');
    for (const l of q.layers) {
      expect(l.error, l.name).toBeLessThan(q.maxLayerError);
      expect(l.weightScale[0], l.name).toBeGreaterThan(0);
      // An α of the grid (stored as float32), or no smoothing.
      expect(l.smoothing === 'none' || q.smoothquant.alphaGrid.some((a) => Math.abs(a - l.alpha!) < 1e-6), l.name).toBe(
        true,
      );
      // o_proj and down_proj have no norm before them: smoothed through act_smooth when at all.
      if (/o_proj|down_proj/.test(l.name)) expect(l.smoothing).not.toBe('norm');
      else expect(l.smoothing).not.toBe('act');
    }
    expect(q.keptInFloat).toEqual([]);
    expect(manifest.timings.calibrate).toBeGreaterThan(0);
    expect(manifest.timings.evaluate).toBeGreaterThan(0);
  });

  test('the running engine maps the int8 weights file in place', async () => {
    const engine = await native.loadEngine(nativeOptions({ engine: dir }));
    try {
      expect(readFileSync('/proc/self/maps', 'utf8')).toContain(join(dir, 'model.safetensors'));
    } finally {
      engine.dispose();
    }
  });
});

/** The norm whose weight carries a layer's smoothing (folded), by module name. */
function normOf(name: string): string | undefined {
  const m = /^(model\.layers\.\d+)\.(self_attn\.[qkv]_proj|mlp\.(gate|up)_proj)$/.exec(name);
  if (m) return `${m[1]}.${m[2]!.startsWith('self_attn') ? 'input_layernorm' : 'post_attention_layernorm'}.weight`;
  return name === 'lm_head' ? 'model.norm.weight' : undefined;
}

const f32 = (t: RawTensor) =>
  new Float32Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.length));

describe('model.safetensors of the int8 engine', () => {
  test('each int8 matrix is the smoothed float one quantized per row, packed in blocks of 16 × 4', () => {
    const source = readTensors(storiesDir);
    const built = readTensors(dir);
    for (const l of q.layers) {
      const weight = built.get(`${l.name}.weight`)!;
      const src = source.get(l.name === 'lm_head' ? 'model.embed_tokens.weight' : `${l.name}.weight`)!;
      const [N, K] = src.shape as [number, number];
      const w = f32(src);
      // The smoothing factors s the engine applies: from the folded norm, or act_smooth = 1/s.
      const s = new Float64Array(K).fill(1);
      const norm = normOf(l.name);
      if (l.smoothing === 'norm') {
        const a = f32(source.get(norm!)!),
          b = f32(built.get(norm!)!);
        for (let k = 0; k < K; k++) s[k] = a[k]! / b[k]!;
      } else if (l.smoothing === 'act') {
        const a = f32(built.get(`${l.name}.act_smooth`)!);
        for (let k = 0; k < K; k++) s[k] = 1 / a[k]!;
      } else {
        expect(built.has(`${l.name}.act_smooth`)).toBe(false);
        if (norm) expect(built.get(norm)!.bytes.equals(source.get(norm)!.bytes), norm).toBe(true);
      }
      expect(Math.min(...s), l.name).toBeCloseTo(l.smooth[0], 4);
      expect(weight.dtype, l.name).toBe('I8');
      const G = Math.ceil(K / 4);
      expect(weight.shape, l.name).toEqual([Math.ceil(N / 16), G, 16, 4]);
      const scale = f32(built.get(`${l.name}.weight_scale`)!);
      const sums = built.get(`${l.name}.weight_sum`)!;
      expect(sums.dtype).toBe('I32');
      const bytes = new Int8Array(weight.bytes.buffer, weight.bytes.byteOffset, weight.bytes.length);
      for (let n = 0; n < Math.ceil(N / 16) * 16; n++) {
        let amax = 0,
          sum = 0;
        for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(w[n * K + k]! * s[k]!));
        for (let k = 0; k < G * 4; k++) {
          const b = bytes[(Math.floor(n / 16) * G + Math.floor(k / 4)) * 64 + (n % 16) * 4 + (k % 4)]!;
          if (n >= N || k >= K) {
            expect(b, `${l.name} padding (${n}, ${k})`).toBe(0);
            continue;
          }
          sum += b;
          const exact = (w[n * K + k]! * s[k]!) / scale[n]!;
          expect(Math.abs(b - exact), `${l.name}[${n}, ${k}]`).toBeLessThanOrEqual(0.5 + 1e-3);
        }
        if (n >= N) continue;
        expect(scale[n]! / (amax / 127), `${l.name} scale of row ${n}`).toBeCloseTo(1, 5);
        expect(sums.bytes.readInt32LE(4 * n), `${l.name} sum of row ${n}`).toBe(sum);
      }
    }
    // A tied model keeps its float embedding for the lookup beside the int8 head.
    expect(built.get('model.embed_tokens.weight')!.bytes.equals(source.get('model.embed_tokens.weight')!.bytes)).toBe(
      true,
    );
  });
});
