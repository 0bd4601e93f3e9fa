// TTFT against prompt length: the scripted server's first chunk comes BASE + PER_TOKEN · words ms after the
// request (without --tokenizer a random prompt of L "tokens" is L words), so each length's TTFT, the implied
// prefill rate L / TTFT and the marginal rate ΔL / ΔTTFT = 1 / PER_TOKEN are known. Tolerances as latency.test:
// timers fire late by up to ~15 ms on a loaded machine, never early.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { point } from '../../src/bench/prefill-curve.js';
import { readJson, runCli, scratchDir } from './run-cli.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

const TOL = 15;
const BASE = 20;
const PER_TOKEN = 0.5; // ms per prompt word: 2000 tokens / s
const LENS = [40, 200, 400];

let server: ScriptedServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const words = (body: Record<string, unknown>) => String(body.prompt).trim().split(/\s+/).length;

describe('--input-lens: TTFT against prompt length', () => {
  it('reports p50/p90/p99 TTFT per length and the prefill rate they imply', async () => {
    server = await startScriptedServer((_, body) => ({
      firstDelayMs: BASE + PER_TOKEN * words(body),
      interChunkMs: 5,
      chunks: 2,
      usage: true,
    }));
    const dir = scratchDir();
    const r = await runCli([
      '--base-url',
      server.baseUrl,
      '--input-lens',
      LENS.join(','),
      '--num-prompts',
      '4',
      '--output-len',
      '2',
      '--result-file',
      join(dir, 'curve.json'),
    ]);
    expect(r.code).toBe(0);
    // one at a time: concurrency 1
    expect(server.maxInFlight()).toBe(1);
    const c = (readJson(join(dir, 'curve.json')) as { prefill_curve: { points: Record<string, number>[] } })
      .prefill_curve;
    expect(c.points.map((p) => p.input_len)).toEqual(LENS);
    for (const p of c.points) {
      const want = BASE + PER_TOKEN * p.input_len!;
      expect(p.completed).toBe(4);
      for (const k of ['p50_ttft_ms', 'p90_ttft_ms', 'p99_ttft_ms']) {
        expect(p[k]).toBeGreaterThanOrEqual(want - 1);
        expect(p[k]).toBeLessThanOrEqual(want + TOL);
      }
      expect(p.p50_ttft_ms).toBeLessThanOrEqual(p.p99_ttft_ms!);
    }
    // the last step: 200 tokens over 100 ms (± timer lateness) → 2000 tok/s within 25 %
    const last = c.points[2]!;
    expect(last.marginal_prefill_tok_s).toBeGreaterThan(2000 * 0.75);
    expect(last.marginal_prefill_tok_s).toBeLessThan(2000 * 1.25);
    expect(c.points[0]!.marginal_prefill_tok_s).toBeNull();
    expect(last.prefill_tok_s).toBeCloseTo(last.input_len! / (last.p50_ttft_ms! / 1000), 6);
    expect(r.out).toMatch(/TTFT against prompt length/);
    const html = readFileSync(join(dir, 'curve.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('TTFT against prompt length');
    expect(html).toContain('prompt tokens');
  });

  it('--background-streams keeps that many other requests in flight beside the measured one', async () => {
    server = await startScriptedServer({ firstDelayMs: 20, interChunkMs: 10, chunks: 3, usage: true });
    const r = await runCli([
      '--base-url',
      server.baseUrl,
      '--input-lens',
      '16,32',
      '--num-prompts',
      '4',
      '--output-len',
      '3',
      '--input-len',
      '8',
      '--background-streams',
      '2',
      '--warmup',
      '0',
    ]);
    expect(r.code).toBe(0);
    expect(server.maxInFlight()).toBe(3);
    expect(r.out).toMatch(/2 background streams of 8 tokens/);
  });

  it('point(): percentiles, L / p50 and the slope from the previous length', () => {
    const a = point(100, [50, 40, 60], 0, undefined);
    expect(a.p50_ttft_ms).toBe(50);
    expect(a.p90_ttft_ms).toBeCloseTo(58, 9); // numpy.percentile([40,50,60], 90) = 58
    expect(a.prefill_tok_s).toBeCloseTo(2000, 9);
    const b = point(300, [150], 1, a);
    expect(b.marginal_prefill_tok_s).toBeCloseTo(2000, 9); // 200 tokens / 0.1 s
    expect(b.failed).toBe(1);
  });

  it('bad --input-lens and --background-streams without it are flag errors', async () => {
    expect((await runCli(['--input-lens', '128,abc'])).code).toBe(2);
    expect((await runCli(['--background-streams', '2'])).err).toMatch(/needs --input-lens/);
  });
});
