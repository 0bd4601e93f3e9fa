// --quantization fp8 and int8 at serve / generate, from the flag to the native engine, and their refusals where
// they cannot run: the flag parses and reaches loadEngine as `quantize` (a model folder is quantized at load;
// int8 on cuda with the calibration samples kvserve build would use), an engine folder is run as it was built
// (no `quantize`), and the native side refuses fp8 on the CPU and with --batch-invariant, and int8 on the CPU,
// in one line before anything is read. The quantized paths themselves run on the GPU:
// test/gpu/engine-fp8.test.ts, test/gpu/engine-int8.test.ts.
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError, engineDefaults, engineFlags, parseFlags } from '../../src/config.js';
import { int8Defaults, planInt8 } from '../../src/build/int8-build.js';
import { loadOptions, nativeOptions } from '../../src/engine/engine.js';
import type { NativeModule } from '../../src/runner/binding.js';
import { loadError } from '../build/engine-helpers.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { storiesDir } from '../native/harness.js';

const noGpu = { cudaAvailable: () => false } as NativeModule;
const parse = (...argv: string[]) => parseFlags(argv, engineFlags, engineDefaults()).config;

describe('the flag', () => {
  test('none by default; fp8 reaches a model folder load as quantize, an engine folder load without it', () => {
    expect(parse().quantization).toBe('none');
    expect(nativeOptions(parse(), noGpu).quantize).toBeUndefined();
    const c = parse('--quantization', 'fp8', '--device', 'cuda');
    expect(nativeOptions(c, noGpu)).toMatchObject({ device: 'cuda', quantize: 'fp8' });
    expect(nativeOptions({ ...c, engine: '/srv/engines/e' }, noGpu).quantize).toBeUndefined();
  });

  test('other values are refused naming the choices', () => {
    expect(() => parse('--quantization', 'int4')).toThrow(
      new ConfigError('--quantization must be one of none, fp8, int8, got "int4"'),
    );
  });

  test('int8 on cuda carries the calibration samples kvserve build would use; on the cpu nothing is tokenized', async () => {
    const c = { ...parse('--quantization', 'int8', '--device', 'cuda', '--model', storiesDir), tokenizer: storiesDir };
    const o = await loadOptions(c, noGpu);
    expect(o).toMatchObject({ device: 'cuda', quantize: 'int8' });
    const build = await planInt8(int8Defaults(), {
      dir: storiesDir,
      configPath: join(storiesDir, 'config.json'),
      dummy: false,
      maxModelLen: 0,
    });
    expect(o.quantization).toEqual(build.request);
    expect(o.quantization).toMatchObject({ method: 'int8', alphas: [0.3, 0.4, 0.5, 0.6, 0.7, 0.8] });
    const cal = o.quantization!.calibration!;
    expect(cal.offsets.length).toBeGreaterThan(2);
    expect(cal.tokens[0]).toBe(1); // every sample starts with BOS
    const cpu = await loadOptions({ ...c, device: 'cpu' }, noGpu);
    expect(cpu).toMatchObject({ device: 'cpu', quantize: 'int8' });
    expect(cpu.quantization).toBeUndefined(); // the native load refuses int8 on the CPU
  });
});

describe('the native engine refuses, in one line', () => {
  test.each([
    [{ quantize: 'fp8' as const }, /^quantization fp8 runs on --device cuda only/],
    [
      { quantize: 'fp8' as const, device: 'cuda' as const, batchInvariant: true },
      /^quantization fp8 with --batch-invariant is not supported yet/,
    ],
    [{ quantize: 'int8' as const }, /^quantization int8 at load runs on --device cuda only \(on cpu: kvserve build/],
  ])('%o', async (o, message) => {
    expect(await loadError(o)).toMatch(message);
  });

  test('kvserve generate --quantization fp8 on the CPU: exit 1, one line', async () => {
    const r = await kvserve([
      'generate',
      '--model',
      storiesDir,
      '--device',
      'cpu',
      '--quantization',
      'fp8',
      '--prompt',
      'Once',
      '--max-tokens',
      '2',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^kvserve: quantization fp8 runs on --device cuda only/);
  });
});
