// The manifest's kvCache section (an engine built with --kv-cache-dtype fp8) on the CPU: written from a
// calibration (kv-calibration.ts), read back and shown by engine-info, accepted by the native loader's checks
// (which then refuse it on the CPU, whose cache is float32: one line), and a damaged section refused at load in
// one line naming the field: wrong count, NaN (null in JSON), a string, negative, zero, infinite, below
// float32's range, another dtype. Also the build's refusals: --kv-cache-dtype fp8 on the CPU, and the
// calibration flags without a calibration to take them. Building and serving such an engine needs the GPU:
// test/gpu/engine-kv-calibration.test.ts.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { buildEngineFolder } from '../../src/build/build-engine.js';
import { defaultCalibData, defaultEvalData } from '../../src/build/calibration-data.js';
import { calibrateKvCache, kvCacheSection, planKvCache } from '../../src/build/kv-calibration.js';
import { formatManifest, readManifest, type KvCacheSection } from '../../src/build/manifest.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { buildInto, buildOptions, loadError, storiesDir, tempDir } from './engine-helpers.js';

let good: string; // a CPU engine of stories260K whose manifest carries a calibrated kvCache section
let section: KvCacheSection;

beforeAll(async () => {
  good = await buildInto(storiesDir);
  const plan = await planKvCache(
    { calibData: defaultCalibData, calibSamples: 4, evalData: defaultEvalData },
    { dir: storiesDir, configPath: `${storiesDir}/config.json`, dummy: false, maxModelLen: 0 },
  );
  const observed = await calibrateKvCache({
    engine: { model: '', engine: good },
    samples: plan.samples,
    maxLen: plan.maxLen,
    threads: 2,
    device: 'cpu',
  });
  section = kvCacheSection(plan, observed, 0.5);
  editManifest(good, (m) => {
    m.kvCache = section;
  });
}, 120_000);

// biome-ignore lint/suspicious/noExplicitAny: a test edits arbitrary manifest fields to break them
function editManifest(dir: string, edit: (m: Record<string, any>) => void): void {
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(path, 'utf8'));
  edit(m);
  writeFileSync(path, JSON.stringify(m));
}

/** A copy of the good engine with its manifest's text or kvCache section changed. */
function damaged(edit: (kv: Record<string, unknown>) => void, text?: (json: string) => string): string {
  const dir = join(tempDir(), 'engine');
  cpSync(good, dir, { recursive: true });
  editManifest(dir, (m) => edit(m.kvCache));
  if (text) writeFileSync(join(dir, 'manifest.json'), text(readFileSync(join(dir, 'manifest.json'), 'utf8')));
  return dir;
}

const rebuild = () => `: rebuild with kvserve build --model ${storiesDir} --device cpu`;

describe('the kvCache section', () => {
  test('round trip: the scales are abs-max / 448 of what was observed, read back and shown as written', () => {
    expect(section.dtype).toBe('fp8_e4m3');
    expect(section.observer).toBe('absmax');
    expect(section.calibration).toMatchObject({ file: defaultCalibData, samples: 4 });
    expect(section.kScale).toEqual(section.kAbsMax.map((m) => Math.fround(m / 448)));
    expect(section.vScale).toEqual(section.vAbsMax.map((m) => Math.fround(m / 448)));
    expect(section.kAbsMax.every((m) => m > 0) && section.vAbsMax.every((m) => m > 0)).toBe(true);
    const m = readManifest(good);
    expect(m.kvCache).toEqual(section);
    const shown = formatManifest(good, m);
    expect(shown).toMatch(/^kv cache +fp8_e4m3, calibrated scales$/m);
    expect(shown).toMatch(
      /^ {2}fp8 KV cache \(fp8_e4m3, .*\): calibrated on 4 samples, \d+ tokens of .*stories-calib\.txt$/m,
    );
    expect(shown).toMatch(/^ {2}layer +K abs-max +K scale +V abs-max +V scale$/m);
    expect(shown).toContain(`  4      ${section.kAbsMax[4]!.toPrecision(3)}`);
  });

  test('the loader accepts its values, then refuses an fp8 KV cache on the CPU in one line', async () => {
    expect(await loadError(good)).toBe(
      `engine ${good} holds an fp8 KV cache (manifest.json kvCache), which only the CUDA backend runs (the CPU ` +
        `keeps its KV cache in float32)${rebuild()} --dtype auto --quantization none --max-num-seqs 16 ` +
        `--max-num-batched-tokens 2048 --max-model-len 0 --out ${good}`,
    );
  });

  test.each([
    [
      'one K scale too few',
      (kv: Record<string, unknown>) => (kv.kScale = section.kScale.slice(1)),
      undefined,
      'kvCache.kScale has 4 entries; the model has 5 layers (one K and one V scale per layer)',
    ],
    [
      'one V scale too many',
      (kv: Record<string, unknown>) => (kv.vScale = [...section.vScale, 1]),
      undefined,
      'kvCache.vScale has 6 entries; the model has 5 layers (one K and one V scale per layer)',
    ],
    [
      'NaN (JSON null)',
      (kv: Record<string, unknown>) => (kv.vScale = section.vScale.map((s, i) => (i === 2 ? Number.NaN : s))),
      undefined,
      'kvCache.vScale[2] is null, not a positive finite number',
    ],
    [
      'a string',
      (kv: Record<string, unknown>) => (kv.kScale = section.kScale.map((s, i) => (i === 0 ? 'NaN' : s))),
      undefined,
      'kvCache.kScale[0] is a string, not a positive finite number',
    ],
    [
      'negative',
      (kv: Record<string, unknown>) => (kv.kScale = section.kScale.map((s, i) => (i === 1 ? -0.5 : s))),
      undefined,
      'kvCache.kScale[1] = -0.5 is not a positive finite number',
    ],
    [
      'zero',
      (kv: Record<string, unknown>) => (kv.vScale = section.vScale.map((s, i) => (i === 4 ? 0 : s))),
      undefined,
      'kvCache.vScale[4] = 0 is not a positive finite number',
    ],
    [
      'infinite',
      (kv: Record<string, unknown>) => (kv.kScale = section.kScale.map((s, i) => (i === 3 ? 12345 : s))),
      (t: string) => t.replace('12345', '1e999'),
      'kvCache.kScale[3] = inf is not a positive finite number',
    ],
    [
      'below float32',
      (kv: Record<string, unknown>) => (kv.kScale = section.kScale.map((s, i) => (i === 3 ? 1e-50 : s))),
      undefined,
      'kvCache.kScale[3] = 1e-50 is not a positive finite number in float32',
    ],
    [
      'another dtype',
      (kv: Record<string, unknown>) => (kv.dtype = 'fp8_e5m2'),
      undefined,
      'kvCache.dtype "fp8_e5m2" is not one this kvserve runs (fp8_e4m3)',
    ],
    [
      'no vScale',
      (kv: Record<string, unknown>) => delete kv.vScale,
      undefined,
      'kvCache.vScale is not an array of per-layer scales',
    ],
  ])('%s: refused at load in one line', async (_, edit, text, what) => {
    const dir = damaged(edit, text);
    const msg = await loadError(dir);
    expect(msg.startsWith(`engine ${dir}: manifest.json ${what}${rebuild()}`), msg).toBe(true);
    expect(msg.endsWith(`--out ${dir}`)).toBe(true);
  });

  test('engine-info refuses a kvCache it cannot show', async () => {
    const dir = damaged((kv) => (kv.kScale = 'all ones'));
    const r = await kvserve(['engine-info', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      `kvserve: engine ${dir}: manifest.json has no valid kvCache (rebuild it with kvserve build)`,
    );
  });
});

describe('kvserve build --kv-cache-dtype fp8 refusals', () => {
  test('on the CPU, in one line, before anything is written', async () => {
    const out = join(tempDir(), 'e');
    await expect(buildEngineFolder({ ...buildOptions(storiesDir, out), kvCacheDtype: 'fp8' })).rejects.toThrow(
      '--kv-cache-dtype fp8 is for --device cuda (the CPU backend keeps the KV cache in float32)',
    );
    const r = await kvserve(['build', '--model', storiesDir, '--out', out, '--kv-cache-dtype', 'fp8', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'kvserve: --kv-cache-dtype fp8 is for --device cuda (the CPU backend keeps the KV cache in float32)',
    );
  });

  test('--calib-data and --calib-samples need a calibration to take them', async () => {
    const r = await kvserve(['build', '--model', storiesDir, '--out', join(tempDir(), 'e'), '--calib-samples', '8']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'kvserve: the int8 options (calibSamples) need --quantization int8 (or --kv-cache-dtype fp8)',
    );
  });
});
