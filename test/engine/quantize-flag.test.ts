// --quantization fp8 at serve / generate, from the flag to the native engine, and its refusals where it cannot
// run: the flag parses and reaches loadEngine as `quantize` (a model folder is quantized at load), an engine
// folder is run as it was built (no `quantize`), and the native side refuses fp8 on the CPU and with
// --batch-invariant in one line before anything is read. The FP8 path itself runs on the GPU:
// test/gpu/engine-fp8.test.ts.
import { describe, expect, test } from 'vitest';
import { ConfigError, engineDefaults, engineFlags, parseFlags } from '../../src/config.js';
import { nativeOptions } from '../../src/engine/engine.js';
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

  test('int8 and other values are refused naming the choices (int8 engines come from kvserve build)', () => {
    expect(() => parse('--quantization', 'int8')).toThrow(
      new ConfigError('--quantization must be one of none, fp8, got "int8"'),
    );
  });
});

describe('the native engine refuses, in one line', () => {
  test.each([
    [{ quantize: 'fp8' as const }, /^quantization fp8 runs on --device cuda only/],
    [
      { quantize: 'fp8' as const, device: 'cuda' as const, batchInvariant: true },
      /^quantization fp8 with --batch-invariant is not supported yet/,
    ],
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
