// Goodput across a sweep: the scripted server answers the first two rates' requests fast (TTFT 20 ms) and
// the third rate's slowly (TTFT 150 ms), so with --goodput ttft:80 the first two rates have every request in
// the SLO and the third none: the highest rate meeting the SLOs is the second. Delays are far from the SLO
// on both sides, so timer lateness (≤ ~15 ms) cannot move a request across it.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchResultJson } from '../../src/bench/result-json.js';
import { highestRateMeetingSlo, sloAttainment } from '../../src/bench/sweep.js';
import { readJson, runCli, scratchDir } from './run-cli.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

let server: ScriptedServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const PROMPTS = 4;

describe('--goodput with --sweep-rates', () => {
  it('reports goodput per rate and the highest rate meeting the SLOs', async () => {
    server = await startScriptedServer((i) => ({
      firstDelayMs: i < 2 * PROMPTS ? 20 : 150,
      interChunkMs: 5,
      chunks: 3,
      usage: true,
    }));
    const dir = scratchDir();
    const r = await runCli([
      '--base-url',
      server.baseUrl,
      '--num-prompts',
      String(PROMPTS),
      '--input-len',
      '4',
      '--output-len',
      '3',
      '--warmup',
      '0',
      '--sweep-rates',
      '10,20,40',
      '--goodput',
      'ttft:80',
      'tpot:1000',
      '--result-file',
      join(dir, 'sweep.json'),
    ]);
    expect(r.code).toBe(0);
    const runs = (readJson(join(dir, 'sweep.json')) as { sweep: BenchResultJson[] }).sweep;
    expect(runs.map(sloAttainment)).toEqual([1, 1, 0].map((x) => expect.closeTo(x, 9)));
    expect(runs[0]!.request_goodput).toBeCloseTo(runs[0]!.request_throughput, 9);
    expect(runs[2]!.request_goodput).toBe(0);
    expect(highestRateMeetingSlo(runs)).toBe(20);
    expect(r.out).toMatch(/goodput/);
    expect(r.out).toMatch(/Highest request rate meeting ttft ≤ 80 ms, tpot ≤ 1000 ms for 90 % of requests: 20 req\/s/);
    const html = readFileSync(join(dir, 'sweep.html'), 'utf8');
    expect(html).toContain('Goodput against throughput');
    expect(html).toContain('20 req/s');
  });

  it('no rate meeting the SLOs, and no SLOs at all', () => {
    const run = (rate: number | 'inf', good: number | null) =>
      ({ request_rate: rate, request_goodput: good, duration: 2, num_prompts: 10 }) as BenchResultJson;
    expect(highestRateMeetingSlo([run(1, 4), run(2, 1)])).toBeUndefined(); // 80 % and 20 %
    expect(highestRateMeetingSlo([run(1, 5), run('inf', 4.5)])).toBe('inf'); // 100 % and 90 %
    expect(highestRateMeetingSlo([run(1, null)])).toBeUndefined();
    expect(sloAttainment(run(1, null))).toBeUndefined();
  });
});
