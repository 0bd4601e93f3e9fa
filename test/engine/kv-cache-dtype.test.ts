// --kv-cache-dtype from the flag to the native engine, and its refusals on the CPU: the flag parses (fp8_e4m3
// is vLLM's other name for it), reaches loadEngine as kvCacheDtype, an fp8 cache on the CPU is refused in one
// line by the config and by the native side (where --device auto resolved to the CPU), the per-layer kvScales
// are checked for count and sign, and the engine reports what its cache holds. The fp8 cache itself runs
// on the GPU: test/gpu/engine-fp8-kv.test.ts.
import { describe, expect, test } from 'vitest';
import { ConfigError, engineDefaults, engineFlags, finishEngineConfig, parseFlags } from '../../src/config.js';
import { nativeOptions } from '../../src/engine/engine.js';
import { loadNative, type NativeModule } from '../../src/runner/binding.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { loadError } from '../build/engine-helpers.js';
import { engineOptions } from '../native/harness.js';

const CPU_REFUSAL = 'needs the CUDA backend (--device cuda); the CPU backend keeps the KV cache in float32';
const noGpu = { cudaAvailable: () => false } as NativeModule;
const parse = (...argv: string[]) => parseFlags(argv, engineFlags, engineDefaults()).config;

describe('the flag', () => {
  test('auto by default; fp8 and fp8_e4m3 reach the native options as fp8', () => {
    expect(parse().kvCacheDtype).toBe('auto');
    expect(nativeOptions(parse(), noGpu).kvCacheDtype).toBe('auto');
    for (const v of ['fp8', 'fp8_e4m3']) {
      const c = parse('--kv-cache-dtype', v, '--device', 'cuda');
      expect(c.kvCacheDtype).toBe(v);
      expect(nativeOptions(c, noGpu)).toMatchObject({ device: 'cuda', kvCacheDtype: 'fp8' });
    }
  });

  test('other values are refused naming the choices', () => {
    expect(() => parse('--kv-cache-dtype', 'fp8_e5m2')).toThrow(
      new ConfigError('--kv-cache-dtype must be one of auto, fp8, fp8_e4m3, got "fp8_e5m2"'),
    );
  });

  test('--device cpu with an fp8 cache is a config error, before anything loads', () => {
    for (const v of ['fp8', 'fp8_e4m3']) {
      const c = parse('--kv-cache-dtype', v, '--device', 'cpu');
      expect(() => finishEngineConfig(c)).toThrow(new ConfigError(`--kv-cache-dtype ${v} ${CPU_REFUSAL}`));
    }
    expect(finishEngineConfig(parse('--kv-cache-dtype', 'auto', '--device', 'cpu')).kvCacheDtype).toBe('auto');
  });
});

describe('the native engine', () => {
  test('an fp8 cache on the CPU backend is refused in one line', async () => {
    expect(await loadError({ kvCacheDtype: 'fp8' })).toBe(
      `--kv-cache-dtype fp8 ${CPU_REFUSAL} (use --kv-cache-dtype auto)`,
    );
  });

  test('an unknown kvCacheDtype is refused', async () => {
    expect(await loadError({ kvCacheDtype: 'int4' as 'fp8' })).toBe(
      'unsupported kvCacheDtype "int4" (supported: auto, fp8)',
    );
  });

  test('kvScales: one positive finite K and V scale per layer, both or neither', async () => {
    const layers = 5; // stories260K
    const ones = Array<number>(layers).fill(1);
    expect(await loadError({ kvScales: { k: [1, 1], v: ones } })).toBe(
      'kvScales.k has 2 entries; the model has 5 layers (one K and one V scale per layer)',
    );
    expect(await loadError({ kvScales: { k: ones, v: [...ones, 1] } })).toMatch(/^kvScales\.v has 6 entries/);
    expect(await loadError({ kvScales: { k: [1, 1, -0.5, 1, 1], v: ones } })).toMatch(
      /^kvScales\.k\[2\] = -0\.50* is not a positive finite number$/,
    );
    expect(await loadError({ kvScales: { k: ones, v: [1, 0, 1, 1, 1] } })).toMatch(/^kvScales\.v\[1\] = 0\.0* is not/);
    expect(await loadError({ kvScales: { k: ones, v: [1, 1, 1, 1, Number.NaN] } })).toMatch(
      /^kvScales\.v\[4\] = .*nan/i,
    );
    await expect(loadNative().loadEngine(engineOptions({ kvScales: { k: ones, v: [] } }))).rejects.toThrow(
      'loadEngine: kvScales needs both k and v (one scale per layer each)',
    );
    await expect(
      loadNative().loadEngine(engineOptions({ kvScales: [1, 2] as unknown as { k: number[]; v: number[] } })),
    ).rejects.toThrow('loadEngine: kvScales must be an object {k: number[], v: number[]}');
  });

  test('valid scales with the default cache load; the engine reports its cache dtype', async () => {
    const ones = Array<number>(5).fill(0.5);
    const engine = await loadNative().loadEngine(
      engineOptions({ kvCacheDtype: 'auto', kvScales: { k: ones, v: ones } }),
    );
    try {
      expect(engine.info()).toMatchObject({ device: 'cpu', dtype: 'float32', kvCacheDtype: 'float32' });
    } finally {
      engine.dispose();
    }
  });
});

describe('kvserve generate and serve', () => {
  test.each([
    ['generate', ['--prompt', 'hi', '--quiet']],
    ['serve', ['--port', '0', '--log-level', 'silent']],
  ])('%s --kv-cache-dtype fp8 --device cpu: one line, exit 1', async (command, args) => {
    const r = await kvserve([command, '--kv-cache-dtype', 'fp8', '--device', 'cpu', ...args]);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('npm warn'));
    expect(lines, r.stderr).toEqual([`kvserve: --kv-cache-dtype fp8 ${CPU_REFUSAL}`]);
  });

  // --device auto picks the CPU here, which only the native side knows: its refusal, in one line.
  test.runIf(!loadNative().cudaAvailable())(
    'generate --kv-cache-dtype fp8 with --device auto on a machine without a GPU',
    async () => {
      const r = await kvserve(['generate', '--kv-cache-dtype', 'fp8', '--prompt', 'hi', '--quiet']);
      expect(r.code).toBe(1);
      const lines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('npm warn'));
      expect(lines, r.stderr).toEqual([`kvserve: --kv-cache-dtype fp8 ${CPU_REFUSAL} (use --kv-cache-dtype auto)`]);
    },
  );
});
