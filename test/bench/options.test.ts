// Flags: help, vLLM-style multi-word flags, clear errors with exit code 2; and the progress bar's TTY rule.
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../../src/bench/options.js';
import { ProgressBar } from '../../src/bench/benchmark.js';
import { runCli } from './run-cli.js';

describe('options', () => {
  it('--help prints every option and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const flag of [
      '--base-url',
      '--endpoint',
      '--model',
      '--api-key',
      '--tokenizer',
      '--dataset',
      '--input-len',
      '--output-len',
      '--range-ratio',
      '--num-prompts',
      '--request-rate',
      '--max-concurrency',
      '--seed',
      '--ignore-eos',
      '--warmup',
      '--goodput',
      '--percentiles',
      '--result-file',
      '--sweep-rates',
      '--compare',
    ]) {
      expect(r.out).toContain(flag.slice(2)); // booleans print as --[no-]name
    }
  });

  it('defaults like vLLM, and multi-word --goodput / --compare', () => {
    const d = parseBenchArgs([]);
    expect(d).toMatchObject({
      endpoint: '/v1/completions',
      dataset: 'random',
      inputLen: 1024,
      outputLen: undefined,
      numPrompts: 1000,
      requestRate: Infinity,
      burstiness: 1,
      percentiles: [99],
      warmup: 1,
      ignoreEos: false,
    });
    const o = parseBenchArgs([
      '--goodput',
      'ttft:500',
      'tpot:50',
      '--request-rate',
      '2.5',
      '--percentiles',
      '50,99.9',
      '--ignore-eos',
      '--sweep-rates',
      '1,inf',
    ]);
    expect(o).toMatchObject({
      goodput: { ttft: 500, tpot: 50 },
      requestRate: 2.5,
      percentiles: [50, 99.9],
      ignoreEos: true,
      sweepRates: [1, Infinity],
    });
    expect(parseBenchArgs(['--compare', 'a.json', 'b.json']).compare).toEqual(['a.json', 'b.json']);
  });

  it.each([
    [['--request-rate', '0'], /--request-rate: "0" is not a positive number or inf/],
    [['--endpoint', '/v1/embeddings'], /--endpoint must be one of/],
    [['--num-prompts', '0'], /--num-prompts must be at least 1/],
    [['--percentiles', '0,101'], /--percentiles must be numbers in \(0, 100\]/],
    [['--goodput', 'latency:5'], /--goodput: "latency:5" is not KEY:MS/],
    [['--compare', 'only.json'], /--compare needs two result files/],
    [['--base-url', 'localhost'], /--base-url must be a URL/],
    [['--bogus'], /unknown option --bogus/],
    [['stray'], /unexpected argument "stray"/],
  ])('%j is refused with exit code 2', async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });
});

describe('progress bar', () => {
  const fakeStream = (isTTY: boolean) => {
    const writes: string[] = [];
    return { writes, stream: { isTTY, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream };
  };

  it('draws nothing when stderr is not a TTY', () => {
    const f = fakeStream(false);
    const bar = ProgressBar.create(3, 'x', f.stream);
    bar.tick(false);
    bar.finish();
    expect(f.writes).toEqual([]);
  });

  it('draws done / total and failures on a TTY', () => {
    const f = fakeStream(true);
    const bar = ProgressBar.create(2, 'run', f.stream);
    bar.tick(false);
    bar.tick(true);
    bar.finish();
    expect(f.writes.join('')).toMatch(/run \[#+\] 2\/2 1 failed/);
    expect(f.writes.at(-1)).toBe('\n');
  });
});
