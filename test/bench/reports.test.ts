// The result file carries vLLM's field names; the HTML reports are self-contained; sweep and compare render.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJson, runCli, scratchDir, storiesDir } from './run-cli.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

let server: ScriptedServer;
beforeAll(async () => {
  server = await startScriptedServer({ firstDelayMs: 20, interChunkMs: 10, chunks: 5, usage: false });
});
afterAll(() => server.close());

const common = () => [
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
];

/** No resource is loaded from anywhere: no scripts, links, images, CSS imports or url(); the only "http" is
 *  the benchmarked server's address printed as text. */
function expectSelfContained(html: string): void {
  expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
  for (const banned of [/<script/i, /<link/i, /<img/i, /<iframe/i, /\ssrc=/i, /\shref=/i, /url\(/i, /@import/i]) {
    expect(html).not.toMatch(banned);
  }
  expect(html.replaceAll(server.baseUrl, '')).not.toMatch(/https?:|\/\//);
  expect(html).toMatch(/<svg /);
}

describe('result file and HTML report', () => {
  it("has vLLM's field names and the HTML report beside it", async () => {
    const dir = scratchDir();
    const file = join(dir, 'run.json');
    const r = await runCli([
      ...common(),
      '--tokenizer',
      storiesDir,
      '--percentiles',
      '50,90,99.9',
      '--result-file',
      file,
    ]);
    expect(r.code).toBe(0);
    const json = readJson(file);
    for (const key of [
      'date',
      'backend',
      'model_id',
      'tokenizer_id',
      'num_prompts',
      'request_rate',
      'burstiness',
      'max_concurrency',
      'completed',
      'failed',
      'duration',
      'total_input_tokens',
      'total_output_tokens',
      'request_throughput',
      'request_goodput',
      'output_throughput',
      'total_token_throughput',
      'max_output_tokens_per_s',
      'max_concurrent_requests',
      'input_lens',
      'output_lens',
      'ttfts',
      'itls',
      'generated_texts',
      'errors',
    ]) {
      expect(json, key).toHaveProperty(key);
    }
    for (const m of ['ttft', 'tpot', 'itl', 'e2el']) {
      for (const stat of ['mean', 'median', 'std', 'p50', 'p90', 'p99.9'])
        expect(json, `${stat}_${m}_ms`).toHaveProperty(`${stat}_${m}_ms`);
    }
    expect(json).toMatchObject({
      completed: 6,
      failed: 0,
      num_prompts: 6,
      request_rate: 'inf',
      model_id: 'scripted-model',
      backend: 'openai',
    });
    expect(json.input_lens).toEqual([16, 16, 16, 16, 16, 16]); // exact with the tokenizer
    // no usage from this server: output tokens counted with the tokenizer, and the table says so
    const texts = json.generated_texts as string[];
    expect(texts[0]).toBe(' w0 w1 w2 w3 w4');
    expect(r.out).toMatch(/counted with the tokenizer/);
    const html = readFileSync(join(dir, 'run.html'), 'utf8');
    expectSelfContained(html);
    expect(html).toMatch(/Time to first token/);
    expect(html).toMatch(/Inter-token latency/);
    expect(html).toMatch(/Output token throughput/);
  });

  it('--sweep-rates runs each rate and plots latency against throughput', async () => {
    const dir = scratchDir();
    const file = join(dir, 'sweep.json');
    const r = await runCli([...common(), '--sweep-rates', '20,inf', '--result-file', file]);
    expect(r.code).toBe(0);
    const json = readJson(file) as { sweep: Array<Record<string, unknown>> };
    expect(json.sweep.map((s) => s.request_rate)).toEqual([20, 'inf']);
    expect(json.sweep.every((s) => s.completed === 6)).toBe(true);
    expect(r.out).toMatch(/Sweep \(latencies in ms\)/);
    const html = readFileSync(join(dir, 'sweep.html'), 'utf8');
    expectSelfContained(html);
    expect(html).toMatch(/TTFT against throughput/);
  });

  it('--compare renders two result files side by side', async () => {
    const dir = scratchDir();
    const [a, b] = [join(dir, 'a.json'), join(dir, 'b.json')];
    expect((await runCli([...common(), '--result-file', a])).code).toBe(0);
    expect((await runCli([...common(), '--max-concurrency', '1', '--result-file', b])).code).toBe(0);
    const html = join(dir, 'cmp.html');
    const r = await runCli(['--compare', a, b, '--html', html]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\s+a\s+b\s+B \/ A/);
    expect(r.out).toMatch(/mean TTFT \(ms\)/);
    const page = readFileSync(html, 'utf8');
    expectSelfContained(page);
    expect(page).toMatch(/A: a.*B: b/s);
    const bad = await runCli(['--compare', a, join(dir, 'missing.json')]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/cannot read .*missing\.json/);
  });
});

describe('no measured prompt is a repeat the server could serve from its prefix cache', () => {
  it('the warm-up prompt and every rate of a sweep draw prompts of their own', async () => {
    const s = await startScriptedServer({ firstDelayMs: 1, interChunkMs: 1, chunks: 2, usage: false });
    try {
      const r = await runCli([
        '--base-url',
        s.baseUrl,
        '--num-prompts',
        '4',
        '--input-len',
        '16',
        '--output-len',
        '2',
        '--warmup',
        '1',
        '--tokenizer',
        storiesDir,
        '--sweep-rates',
        '50,inf',
        '--result-file',
        join(scratchDir(), 'sweep.json'),
      ]);
      expect(r.code, r.err).toBe(0);
      const prompts = s.seen.filter((x) => x.path === '/v1/completions').map((x) => String(x.body.prompt));
      expect(prompts.length).toBe(1 + 4 + 4);
      expect(new Set(prompts).size).toBe(prompts.length);
    } finally {
      await s.close();
    }
  });
});
