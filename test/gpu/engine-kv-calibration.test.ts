// kvserve build --device cuda --kv-cache-dtype fp8 on the GPU: the tiny random bf16 Llama / Qwen2 / Qwen3
// (make_bf16_references.py) calibrated on a text of synthetic-tokenizer words.
// - The manifest's scales are abs-max / 448 (float32) of what the observer saw, and that abs-max is, per layer,
//   transformers' own: the K (after RoPE) and V of its past_key_values over the same token ids in bf16 on the
//   same GPU (kv_absmax_reference.py), within 3 % (two bf16 forward passes whose GEMMs sum in other orders).
// - A load of the engine runs the fp8 cache with those scales by default: info() reports them, and the cache
//   it writes holds them (observed over an fp8 cache: layer 0, whose input does not depend on the cache, tops
//   out at exactly 448 x scale, the largest e4m3 code); --kv-cache-dtype auto of kvserve serve --engine serves
//   them (the sampled tokens' logprobs are the calibrated engine's, not those of scales of 1.0).
// - Top-1 agreement with the unquantized model (the build's quality measure, run with the fp8 cache) with the
//   calibrated scales against the same engine with its scales set to 1.0: within noise of it (>= minus 3
//   points) where K and V lie where e4m3 at scale 1 keeps its 3 bits (these models: |K| up to ~10); and
//   clearly above it (>= plus 3 points) on the same models with K and V moved 2^8 below (most values e4m3
//   subnormals at scale 1) and 2^8 above (a third of them beyond 448, saturated) by an exact rescaling of
//   q/k/v/o (q and o by the inverse: the same function in bf16, bit for bit), where the calibrated agreement
//   stays within 2 points of the unscaled model's.
// - --quantization fp8 with --kv-cache-dtype fp8: one quality measure of both, in the quantization section.
// - A model the fp8 attention cannot run is refused in one line before its weights are uploaded.
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { defaultEvalData } from '../../src/build/calibration-data.js';
import { planKvCache } from '../../src/build/kv-calibration.js';
import { readManifest, type EngineManifest } from '../../src/build/manifest.js';
import { measureQuality, prefillBatch } from '../../src/build/quality.js';
import { loadNative, type NativeEngine } from '../../src/runner/binding.js';
import { writeSyntheticTokenizer } from '../../src/tokenizer/synthetic.js';
import { tensorOffsets } from '../build/safetensors-reader.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { storiesDir } from '../native/harness.js';
import { greedyRun } from '../native/native-run.js';
import { serveCompletion } from '../server/helpers/child-server.js';
import { buildCuda, profileOptions, tempDir } from './cuda-engine-helpers.js';
import { BF16_MODELS, bf16RefsDir, ensureBf16Refs, record } from './gpu-harness.js';

beforeAll(ensureBf16Refs, 600_000);

const VOCAB = 1024;
const root = tempDir('kvserve-kv-calib-');
/** Samples of synthetic-tokenizer words ("w17 w903 ..."), one per paragraph, of these lengths. */
function wordsFile(name: string, lengths: number[], seed: number): string {
  let x = seed;
  const next = () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return 3 + (x % (VOCAB - 3));
  };
  const file = join(root, name);
  writeFileSync(file, lengths.map((n) => Array.from({ length: n }, () => `w${next()}`).join(' ')).join('\n\n'));
  return file;
}
const calibData = wordsFile('calib.txt', [31, 64, 96, 128, 160, 200, 256, 300], 7);
const evalData = wordsFile('eval.txt', [120, 150, 180, 200, 240, 260], 11);
const CALIB = { calibData, calibSamples: 8 };

/** A copy of a bf16 reference model with the synthetic tokenizer; with `exp`, K and V times 2^exp through an
 *  exact rescaling of its weights that leaves the model's function unchanged (q and o by 2^-exp; qwen3's q/k
 *  norms instead of q/k_proj, which the norms would undo). */
function model(name: string, exp = 0): string {
  const dir = join(root, `${name}${exp ? `-kv2e${exp}` : ''}`);
  cpSync(resolve(bf16RefsDir, name), dir, { recursive: true });
  writeSyntheticTokenizer(dir, VOCAB);
  if (exp === 0) return dir;
  const file = join(dir, 'model.safetensors');
  const buf = readFileSync(file);
  const qkNorm = name.includes('qknorm');
  const factor = (t: string): number => {
    const m = /\.self_attn\.(q_proj|k_proj|v_proj|o_proj|q_norm|k_norm)\./.exec(t);
    if (!m) return 1;
    if (qkNorm && (m[1] === 'q_proj' || m[1] === 'k_proj')) return 1;
    return m[1]!.startsWith('q') || m[1] === 'o_proj' ? 2 ** -exp : 2 ** exp;
  };
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (const [t, o] of tensorOffsets(file)) {
    const s = factor(t);
    if (s === 1) continue;
    if (o.dtype !== 'BF16') throw new Error(`${t} is ${o.dtype}, not BF16`);
    for (let i = o.start; i < o.end; i += 2) {
      u[0] = buf.readUInt16LE(i) << 16;
      f[0]! *= s;
      if ((u[0]! & 0xffff) !== 0 || !Number.isFinite(f[0]!)) throw new Error(`${t}: x 2^${exp} is not exact in bf16`);
      buf.writeUInt16LE(u[0]! >>> 16, i);
    }
  }
  writeFileSync(file, buf);
  return dir;
}

const kvBuild = (dir: string, extra = {}) =>
  buildCuda(dir, 'auto', undefined, { kvCacheDtype: 'fp8', calibration: CALIB, evalData, ...extra });

/** The calibration samples' token ids, as the build tokenized them. */
async function calibIds(dir: string): Promise<number[][]> {
  const plan = await planKvCache(
    { ...CALIB, evalData: defaultEvalData },
    { dir, configPath: join(dir, 'config.json'), dummy: false, maxModelLen: 0 },
  );
  return plan.samples;
}

/** transformers' per-layer abs-max of K (after RoPE) and V over the samples. */
function transformersAbsMax(dir: string, samples: number[][]): { k: number[]; v: number[] } {
  const ids = join(root, 'ids.json');
  writeFileSync(ids, JSON.stringify(samples));
  const r = spawnSync('python3', [resolve(import.meta.dirname, 'kv_absmax_reference.py'), dir, ids], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`kv_absmax_reference.py failed: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { k: number[]; v: number[] };
}

async function withEngine<T>(o: Parameters<typeof profileOptions>[0], f: (e: NativeEngine) => Promise<T>): Promise<T> {
  const engine = await loadNative().loadEngine(profileOptions(o));
  try {
    return await f(engine);
  } finally {
    engine.dispose();
  }
}

/** A copy of the engine whose manifest's scales are all 1.0 (the uncalibrated fp8 cache), and its quality. */
async function qualityAtScaleOne(engine: string, modelDir: string, m: EngineManifest) {
  const copy = join(tempDir(), 'engine-scale-1');
  cpSync(engine, copy, { recursive: true });
  const ones = m.kvCache!.kScale.map(() => 1);
  writeFileSync(
    join(copy, 'manifest.json'),
    JSON.stringify({ ...m, kvCache: { ...m.kvCache!, kScale: ones, vScale: ones } }),
  );
  const plan = await planKvCache(
    { ...CALIB, evalData },
    { dir: modelDir, configPath: join(modelDir, 'config.json'), dummy: false, maxModelLen: 0 },
  );
  return measureQuality({
    engineDir: copy,
    reference: { model: modelDir, dummyWeights: false, dtype: 'bfloat16', seed: 0 },
    samples: plan.evalSamples,
    maxLen: plan.maxLen,
    threads: 0,
    device: 'cuda',
  });
}

const layers = (a: number[]) => a.map((x) => Math.fround(x));
const baseline = new Map<string, number>(); // each model's calibrated agreement, unscaled (its 2^0 case runs first)

describe.each(BF16_MODELS)('%s built with --kv-cache-dtype fp8', (name) => {
  test('scales = abs-max / 448 of transformers K after RoPE and V; a load runs the fp8 cache with them', async () => {
    const dir = model(name);
    const engine = await kvBuild(dir);
    const kv = readManifest(engine).kvCache!;
    expect(kv).toMatchObject({ dtype: 'fp8_e4m3', observer: 'absmax', calibration: { samples: 8 } });
    expect(kv.kScale).toEqual(kv.kAbsMax.map((a) => Math.fround(a / 448)));
    expect(kv.vScale).toEqual(kv.vAbsMax.map((a) => Math.fround(a / 448)));
    const samples = await calibIds(dir);
    const theirs = transformersAbsMax(dir, samples);
    const rel = (a: number[], b: number[]) => a.map((x, l) => Math.abs(x - b[l]!) / b[l]!);
    const errK = rel(kv.kAbsMax, theirs.k),
      errV = rel(kv.vAbsMax, theirs.v);
    record(`kv calibration ${name}`, { ours: { k: kv.kAbsMax, v: kv.vAbsMax }, transformers: theirs, errK, errV });
    expect(Math.max(...errK, ...errV)).toBeLessThan(0.03);

    await withEngine({ engine }, async (e) => {
      expect(e.info()).toMatchObject({
        kvCacheDtype: 'fp8_e4m3',
        kvScales: { k: layers(kv.kScale), v: layers(kv.vScale) },
      });
      // What the fp8 cache holds, through the same observer: layer 0's K and V top out at the largest code.
      const seen = { k: [] as number[], v: [] as number[] };
      for (const ids of samples) {
        const r = await e.step({ ...prefillBatch(ids, false), observeKvAbsMax: true });
        for (let l = 0; l < kv.kScale.length; l++) {
          seen.k[l] = Math.max(seen.k[l] ?? 0, r.kvAbsMax![2 * l]!);
          seen.v[l] = Math.max(seen.v[l] ?? 0, r.kvAbsMax![2 * l + 1]!);
        }
      }
      expect(seen.k[0]).toBe(Math.fround(448 * kv.kScale[0]!));
      expect(seen.v[0]).toBe(Math.fround(448 * kv.vScale[0]!));
      for (let l = 0; l < kv.kScale.length; l++) {
        expect(seen.k[l]).toBeLessThanOrEqual(Math.fround(448 * kv.kScale[l]!)); // saturated, never beyond
        expect(seen.k[l]).toBeGreaterThan(0.8 * 448 * kv.kScale[l]!);
      }
    });
    await withEngine({ engine, kvScales: { k: kv.kScale.map(() => 1), v: kv.vScale.map(() => 1) } }, async (e) => {
      expect(e.info().kvScales!.k.every((s) => s === 1)).toBe(true); // the caller's own scales win
    });
  });

  test.each([0, -8, 8])(
    'top-1 agreement with calibrated scales >= with scale 1.0 (K and V times 2^%i)',
    async (exp) => {
      const dir = model(name, exp);
      const engine = await kvBuild(dir);
      const m = readManifest(engine);
      const calibrated = m.kvCache!.quality!;
      const one = await qualityAtScaleOne(engine, dir, m);
      record(`kv calibration quality ${name} 2^${exp}`, {
        calibrated: calibrated.top1Agreement,
        scaleOne: one.top1Agreement,
        perplexity: {
          float: calibrated.perplexity.float,
          calibrated: calibrated.perplexity.quantized,
          scaleOne: one.perplexity.quantized,
        },
        kScale: m.kvCache!.kScale,
        vScale: m.kvCache!.vScale,
      });
      if (exp === 0) {
        expect(calibrated.top1Agreement).toBeGreaterThanOrEqual(one.top1Agreement - 0.03);
        baseline.set(name, calibrated.top1Agreement);
      } else {
        expect(calibrated.top1Agreement).toBeGreaterThanOrEqual(one.top1Agreement + 0.03);
        expect(Math.abs(calibrated.top1Agreement - baseline.get(name)!)).toBeLessThanOrEqual(0.02);
      }
    },
  );
});
describe('serving an engine built with --kv-cache-dtype fp8', () => {
  test('serve --engine (kv-cache-dtype auto) runs the fp8 cache with the calibrated scales', async () => {
    // K and V 2^-8 below 1: scales of 1.0 would give clearly other logprobs than the calibrated ones.
    const dir = model('llama-d64-g4', -8);
    const engine = await kvBuild(dir);
    const { ready, answer } = await serveCompletion(
      ['--device', 'cuda', '--engine', engine, '--served-model-name', 'kv8'],
      {
        model: 'kv8',
        prompt: 'w5 w9 w13 w17 w21 w25 w29 w33',
        max_tokens: 16,
        temperature: 0,
        ignore_eos: true,
        logprobs: 1,
        return_tokens_as_token_ids: true,
      },
    );
    expect(ready).toMatchObject({ kvCacheDtype: 'fp8_e4m3' });
    const lp = (answer as { choices: [{ logprobs: { tokens: string[]; token_logprobs: number[] } }] }).choices[0]
      .logprobs;
    const got = { ids: lp.tokens.map((t) => Number(t.replace('token_id:', ''))), logprobs: lp.token_logprobs };
    const prompt = [1, 5, 9, 13, 17, 21, 25, 29, 33];
    const logprobsOf = (e: NativeEngine) =>
      greedyRun(e, prompt, 16, got.ids).then((r) =>
        r.logits.map((row, s) => {
          const max = Math.max(...row);
          const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
          return row[got.ids[s]!]! - lse;
        }),
      );
    const ones = readManifest(engine).kvCache!.kScale.map(() => 1);
    const calibrated = await withEngine({ engine }, logprobsOf);
    const scaleOne = await withEngine({ engine, kvScales: { k: ones, v: ones } }, logprobsOf);
    const diff = (a: number[]) => Math.max(...a.map((x, i) => Math.abs(x - got.logprobs[i]!)));
    record('kv calibration serve', { calibrated: diff(calibrated), scaleOne: diff(scaleOne) });
    expect(diff(calibrated)).toBeLessThan(1e-3);
    expect(diff(scaleOne)).toBeGreaterThan(1e-2);
  });

  test('--quantization fp8 with --kv-cache-dtype fp8: both in the engine, one quality measure of both', async () => {
    const engine = await kvBuild(model('llama-d64-g4'), { quantization: 'fp8' });
    const m = readManifest(engine);
    expect(m.quantization.method).toBe('fp8');
    expect(m.quantization.method === 'fp8' && m.quantization.quality).toBeTruthy();
    expect(m.kvCache!.quality).toBeNull();
    expect(m.rebuild).toEqual(expect.arrayContaining(['--quantization', 'fp8', '--kv-cache-dtype', 'fp8']));
    await withEngine({ engine }, async (e) =>
      expect(e.info()).toMatchObject({ quantization: 'fp8', kvCacheDtype: 'fp8_e4m3' }),
    );
  });

  test('kvserve build prints the per-layer scales; a model the fp8 cache cannot run is refused in one line', async () => {
    const out = join(tempDir(), 'cli');
    const args = ['build', '--device', 'cuda', '--kv-cache-dtype', 'fp8', '--calib-data', calibData];
    const ok = await kvserve([
      ...args,
      '--model',
      model('qwen3-d128-g8-qknorm'),
      '--eval-data',
      evalData,
      '--out',
      out,
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/^fp8 KV cache \(fp8_e4m3, .*\): calibrated on 8 samples, \d+ tokens of .*calib\.txt$/m);
    expect(ok.stderr).toMatch(/^layer +K abs-max +K scale +V abs-max +V scale$/m);
    expect(ok.stderr).toMatch(/^quality on \d+ held-out tokens of .*eval\.txt: .* fp8 KV cache .*top-1 agreement/m);
    expect(ok.stderr).toContain(`kvserve: built ${out} (bfloat16, fp8 KV cache, cuda`);
    const bad = await kvserve([...args, '--model', storiesDir, '--out', join(tempDir(), 'stories'), '--quiet']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe(
      'kvserve: --kv-cache-dtype fp8 needs a bfloat16 or float16 model with head_dim 64, 128 or 256 and at most 16 ' +
        'query heads per KV head; this one computes in float32 with head_dim 8 and 2 query heads per KV head ' +
        '(use --kv-cache-dtype auto)',
    );
  });
});
