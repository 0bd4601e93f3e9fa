// A/B in one run: two scripted servers, B scripted exactly 2× slower than A (first chunk, chunk gaps). At
// concurrency 1 the requests must alternate pair by pair, A first in even pairs and B in odd ones (A B B A …),
// both servers must see the same prompts, and B / A must come out ≈ 2 with its bootstrap interval around it.
// Timer lateness is added, not multiplied (a few ms on both sides), so on a quiet machine the measured ratio
// sits just under 2; on a loaded one (a load average of 12 on 2 cores gave 2.21) a late timer on a B chunk
// can lift it above: the bounds allow both, and still fail a ratio near 1 (no slower B, or mixed-up sides).
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootstrapRatio } from '../../src/bench/ab-bootstrap.js';
import { readJson, runCli, scratchDir } from './run-cli.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

let servers: ScriptedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

interface Ratio {
  metric: string;
  ratio: number;
  ci95_lo: number;
  ci95_hi: number;
  pairs: number;
}

describe('A/B: two --base-url', () => {
  it('interleaves A B B A … with the same prompts, and B / A ≈ 2 for a 2× slower B', async () => {
    const a = await startScriptedServer({ firstDelayMs: 60, interChunkMs: 20, chunks: 4, usage: true });
    const b = await startScriptedServer({ firstDelayMs: 120, interChunkMs: 40, chunks: 4, usage: true });
    servers = [a, b];
    const dir = scratchDir();
    const r = await runCli([
      '--base-url',
      a.baseUrl,
      '--base-url',
      b.baseUrl,
      '--num-prompts',
      '8',
      '--input-len',
      '8',
      '--output-len',
      '4',
      '--max-concurrency',
      '1',
      '--warmup',
      '1',
      '--result-file',
      join(dir, 'ab.json'),
    ]);
    expect(r.code).toBe(0);
    const ab = (readJson(join(dir, 'ab.json')) as { ab: Record<string, unknown> }).ab;
    expect(ab.send_order).toEqual(Array.from({ length: 16 }, (_, i) => ['A', 'B', 'B', 'A'][i % 4]));
    // what the servers saw: after the warm-up, every A request ended before the B one began and vice versa
    const events = [
      ...a.seen.slice(1).map((s) => ['A', s.receivedAt] as const),
      ...b.seen.slice(1).map((s) => ['B', s.receivedAt] as const),
    ]
      .sort((x, y) => x[1] - y[1])
      .map((e) => e[0]);
    expect(events.join('')).toBe('ABBA'.repeat(4));
    expect(a.seen.slice(1).map((s) => s.body.prompt)).toEqual(b.seen.slice(1).map((s) => s.body.prompt));
    for (const x of ab.ratios as Ratio[]) {
      expect(x.pairs).toBe(8);
      expect(x.ratio).toBeGreaterThan(1.75);
      expect(x.ratio).toBeLessThan(2.35);
      expect(x.ci95_lo).toBeLessThanOrEqual(x.ratio);
      expect(x.ci95_hi).toBeGreaterThanOrEqual(x.ratio);
      expect(x.ci95_lo).toBeGreaterThan(1.6);
      expect(x.ci95_hi).toBeLessThan(2.5);
    }
    expect(r.out).toMatch(/B \/ A/);
    expect(r.out).toMatch(/paired bootstrap/);
    const html = readFileSync(join(dir, 'ab.html'), 'utf8');
    expect(html).toContain('95% CI');
    expect(html).toContain(a.baseUrl);
    expect(html).toContain(b.baseUrl);
  });

  it('without a limit each pair is sent together', async () => {
    const a = await startScriptedServer({ firstDelayMs: 30, interChunkMs: 10, chunks: 2, usage: true });
    const b = await startScriptedServer({ firstDelayMs: 30, interChunkMs: 10, chunks: 2, usage: true });
    servers = [a, b];
    const r = await runCli([
      '--base-url',
      a.baseUrl,
      '--base-url',
      b.baseUrl,
      '--num-prompts',
      '4',
      '--input-len',
      '4',
      '--output-len',
      '2',
      '--request-rate',
      '20',
      '--warmup',
      '0',
    ]);
    expect(r.code).toBe(0);
    // pair i reaches both servers within a few ms of each other
    for (let i = 0; i < 4; i++) expect(Math.abs(a.seen[i]!.receivedAt - b.seen[i]!.receivedAt)).toBeLessThan(15);
  });

  it('bootstrap: exact 2× pairs give [2, 2]; the interval is reproducible and holds the ratio', () => {
    const a = [10, 20, 30, 40, 50];
    expect(
      bootstrapRatio(
        a,
        a.map((x) => 2 * x),
      ),
    ).toMatchObject({ ratio: 2, lo: 2, hi: 2, pairs: 5 });
    const b = [12, 35, 28, 90, 41];
    const one = bootstrapRatio(a, b);
    expect(bootstrapRatio(a, b)).toEqual(one);
    expect(one.ratio).toBeCloseTo(206 / 150, 12);
    expect(one.lo).toBeLessThan(one.ratio);
    expect(one.hi).toBeGreaterThan(one.ratio);
    expect(Number.isNaN(bootstrapRatio([], []).ratio)).toBe(true);
  });

  it('a third --base-url is a flag error', async () => {
    const r = await runCli(['--base-url', 'http://a', '--base-url', 'http://b', '--base-url', 'http://c']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/at most two/);
  });
});
