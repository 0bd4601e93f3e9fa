// What the reports say beside the numbers: each run's settings (server, date, rate, concurrency, dataset) in
// the run HTML and in --compare (stdout and HTML, with a B / A column); the TTFT / TPOT / ITL / E2EL
// definitions; the over-time charts' bin width, which is the bin of the summary's peaks, so the peaks shown
// with the charts equal the result file's; and point labels kept inside the chart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChartSvg } from '../../src/bench/svg-charts.js';
import { readJson, runCli, scratchDir } from './run-cli.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

let server: ScriptedServer;
beforeAll(async () => {
  server = await startScriptedServer({ firstDelayMs: 20, interChunkMs: 10, chunks: 5, usage: true });
});
afterAll(() => server.close());

const run = async (file: string, extra: string[]) => {
  const r = await runCli([
    '--base-url',
    server.baseUrl,
    '--num-prompts',
    '6',
    '--input-len',
    '16',
    '--output-len',
    '5',
    '--warmup',
    '0',
    '--result-file',
    file,
    ...extra,
  ]);
  expect(r.code, r.err).toBe(0);
  return r;
};

describe('report settings, definitions and bins', () => {
  it('the run HTML shows settings, definitions, and peaks from the charts’ own bins equal to the file’s', async () => {
    const dir = scratchDir();
    const r = await run(join(dir, 'run.json'), ['--max-concurrency', '3']);
    const json = readJson(join(dir, 'run.json'));
    const html = readFileSync(join(dir, 'run.html'), 'utf8');
    for (const s of [server.baseUrl, 'Max concurrency', 'Request rate (req/s)', 'Dataset', 'random (input 16', 'Date'])
      expect(html).toContain(s);
    expect(html).toContain(String(json.date));
    expect(html).toContain('TPOT: per request');
    expect(html).toContain('ITL: gaps between consecutive content chunks');
    expect(r.out).toMatch(/TPOT: per request.*\n.*ITL: gaps/);
    // all 6 requests (30 tokens) end well inside the first second: one 1 s bin holds them all
    expect(json.max_output_tokens_per_s).toBe(30);
    expect(json.max_concurrent_requests).toBe(6);
    expect(html).toContain(
      `Bin width 1 s, the bins of the summary's peaks: peak ${json.max_output_tokens_per_s} output tok/s, peak ${json.max_concurrent_requests} requests in flight.`,
    );
    expect(html).toContain('Output token throughput (1 s bins)');
  });

  it('--compare shows both runs’ settings and a B / A column, on stdout and in the HTML', async () => {
    const dir = scratchDir();
    const [a, b] = [join(dir, 'a.json'), join(dir, 'b.json')];
    await run(a, ['--request-rate', '50']);
    await run(b, ['--max-concurrency', '2']);
    const html = join(dir, 'cmp.html');
    const r = await runCli(['--compare', a, b, '--html', html]);
    expect(r.code).toBe(0);
    const line = (label: string) => r.out.split('\n').find((l) => l.startsWith(label)) ?? '';
    expect(line('Request rate (req/s)')).toMatch(/50\s+inf\s+–$/);
    expect(line('Max concurrency')).toMatch(/unlimited\s+2\s+–$/);
    expect(line('Server')).toContain(server.baseUrl);
    expect(line('Date')).not.toBe('');
    expect(line('Dataset')).toContain('random (input 16');
    expect(line('Successful requests')).toMatch(/6\s+6\s+1\.00×$/);
    expect(r.out).toContain('ITL: gaps between consecutive content chunks');
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<th>B / A</th>');
    expect(page).toMatch(/<td>Max concurrency<\/td><td>unlimited<\/td><td>2<\/td><td>–<\/td>/);
    expect(page).toMatch(/<td>Successful requests<\/td><td>6<\/td><td>6<\/td><td>1\.00×<\/td>/);
  });

  it('point labels stay inside the chart: right-hand ones end at their dot, top ones go below it', () => {
    const svg = lineChartSvg(
      [
        {
          name: 's',
          color: '#000',
          points: [
            [0, 0],
            [10, 10],
          ],
          labels: ['low', 'a long label'],
        },
      ],
      {
        title: 't',
        xLabel: 'x',
        yLabel: 'y',
        dots: true,
      },
    );
    const label = /<text x="([0-9.]+)" y="([0-9.]+)" text-anchor="(\w+)"[^>]*>a long label</.exec(svg);
    expect(label).not.toBeNull();
    expect(label![3]).toBe('end');
    expect(Number(label![1])).toBeLessThanOrEqual(640);
    expect(Number(label![2])).toBeGreaterThan(28); // below the title band
    expect(svg).toMatch(/text-anchor="start"[^>]*>low</);
  });
});
