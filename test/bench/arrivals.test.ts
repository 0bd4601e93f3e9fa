// Poisson arrivals: exponential gaps with mean 1/rate, reproducible from the seed, and kept by the client.
// Statistical tolerances: with n gaps the sample mean has relative std 1/√n (exponential); n = 4000 gives
// 1.6 %, so ±5 % is over 3σ. The seeds are fixed, so the tests are deterministic as well.
import { afterEach, describe, expect, it } from 'vitest';
import { arrivalOffsets } from '../../src/bench/benchmark.js';
import { mean, std } from '../../src/bench/stats.js';
import { runCli } from './run-cli.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]!);

describe('arrivalOffsets', () => {
  it('Poisson: mean gap 1/rate, coefficient of variation 1', () => {
    for (const seed of [0, 1, 42]) {
      const g = gaps(arrivalOffsets(4001, 20, 1, seed));
      expect(Math.abs(mean(g) / 0.05 - 1)).toBeLessThan(0.05);
      expect(Math.abs(std(g) / mean(g) - 1)).toBeLessThan(0.1);
    }
  });

  it('burstiness b: gamma gaps with the same mean and CV 1/√b', () => {
    for (const b of [0.5, 4]) {
      const g = gaps(arrivalOffsets(8001, 10, b, 7));
      expect(Math.abs(mean(g) / 0.1 - 1)).toBeLessThan(0.05);
      expect(Math.abs(std(g) / mean(g) / (1 / Math.sqrt(b)) - 1)).toBeLessThan(0.1);
    }
  });

  it('the same seed gives the same schedule; another seed another; inf sends all at 0', () => {
    expect(arrivalOffsets(50, 5, 1, 3)).toEqual(arrivalOffsets(50, 5, 1, 3));
    expect(arrivalOffsets(50, 5, 1, 3)).not.toEqual(arrivalOffsets(50, 5, 1, 4));
    expect(arrivalOffsets(5, Number.POSITIVE_INFINITY, 1, 0)).toEqual([0, 0, 0, 0, 0]);
    expect(arrivalOffsets(5, 5, 1, 0)[0]).toBe(0);
  });
});

describe('requests reach the server on the schedule', () => {
  let server: ScriptedServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('rate 25 req/s, seed 5: observed arrival gaps match the scheduled ones within 5 ms on average', async () => {
    server = await startScriptedServer({ firstDelayMs: 5, interChunkMs: 5, chunks: 2, usage: true });
    const n = 60;
    const r = await runCli([
      '--base-url',
      server.baseUrl,
      '--num-prompts',
      String(n),
      '--request-rate',
      '25',
      '--seed',
      '5',
      '--input-len',
      '4',
      '--output-len',
      '2',
      '--warmup',
      '0',
    ]);
    expect(r.code).toBe(0);
    const observed = gaps(server.seen.map((s) => s.receivedAt / 1000));
    const scheduled = gaps(arrivalOffsets(n, 25, 1, 5));
    expect(Math.abs(mean(observed) - mean(scheduled)) * 1000).toBeLessThan(5);
    // per gap: no request early, none badly late (timers fire late, never early)
    const diffs = observed.map((o, i) => (o - scheduled[i]!) * 1000);
    expect(mean(diffs.map(Math.abs))).toBeLessThan(5);
    // (that the schedule itself is Poisson at the rate is checked above on thousands of gaps)
  });
});
