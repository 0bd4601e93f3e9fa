// `kvserve bench` against the real kvserve server (CPU engine, stories260K): every request completes, the
// token counts are exact (prompts built to exact lengths with the tokenizer; ignore_eos makes the output
// length exact), and the latencies are consistent with each other.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { readJson, runCli, scratchDir, storiesDir } from './run-cli.js';
import { startStoriesServer } from '../server/helpers/stories-server.js';

let server: ServeHandle;

beforeAll(async () => {
  server = await startStoriesServer();
  await server.ready;
});
afterAll(() => server?.close(1000));

describe('kvserve bench against kvserve serve (stories260K, CPU)', () => {
  test.each(['/v1/completions', '/v1/chat/completions'])(
    '%s: all complete, exact token counts, consistent latencies',
    async (endpoint) => {
      const dir = scratchDir();
      const resultFile = join(dir, 'run.json');
      const r = await runCli([
        '--base-url',
        server.url,
        '--endpoint',
        endpoint,
        '--tokenizer',
        storiesDir,
        '--input-len',
        '32',
        '--output-len',
        '24',
        '--num-prompts',
        '24',
        '--request-rate',
        '50',
        '--max-concurrency',
        '8',
        '--ignore-eos',
        '--seed',
        '1',
        '--percentiles',
        '50,99',
        '--result-file',
        resultFile,
      ]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/Successful requests:\s+24/);
      const res = readJson(resultFile) as Record<string, number>;
      expect(res.completed).toBe(24);
      expect(res.failed).toBe(0);
      expect(res.total_output_tokens).toBe(24 * 24);
      // completions: prompts of exactly 32 tokens; chat adds the template's tokens (stories260K's adds none but BOS).
      if (endpoint === '/v1/completions') expect(res.total_input_tokens).toBe(24 * 32);
      expect(res.mean_ttft_ms).toBeGreaterThan(0);
      expect(res.mean_ttft_ms).toBeLessThanOrEqual(res.mean_e2el_ms);
      expect(res.mean_tpot_ms).toBeGreaterThan(0);
      expect(res.p99_ttft_ms).toBeGreaterThanOrEqual(res.median_ttft_ms);
      expect(res.output_throughput).toBeCloseTo((24 * 24) / res.duration, 1);
      // The server saw it all: generation counter covers every token the bench counted.
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const gen = Number(/^vllm:generation_tokens_total\{[^}]*\} (\S+)/m.exec(metrics)?.[1]);
      expect(gen).toBeGreaterThanOrEqual(24 * 24);
    },
  );
});
