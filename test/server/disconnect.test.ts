// A client that goes away mid-stream aborts its engine requests: running requests and KV usage return
// to zero (read from the engine and from /metrics, as an operator would see them).
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricValue, readThenDisconnect, until } from './helpers/disconnect.js';
import { MODEL, startTestServer, type TestServer } from './helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  // Slow ticks: a 400-token request would run for seconds if nobody aborted it.
  server = await startTestServer({ engine: { tickMs: 10 } });
});
afterAll(() => server.close());

const metric = (name: string) => metricValue(server.url, name);

describe('client disconnect', () => {
  it('aborting a stream mid-way frees the running request and its KV blocks', async () => {
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'x', maxRetries: 0 });
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: MODEL, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 400, n: 2, stream: true },
      { signal: controller.signal },
    );
    const chunks = await readThenDisconnect(stream, controller, 5, async () => {
      expect(await metric('vllm:num_requests_running')).toBe(2);
      expect(await metric('vllm:kv_cache_usage_perc')).toBeGreaterThan(0);
    });
    expect(chunks).toBeLessThan(20);
    await until(() => server.engine.stats().numRunning === 0);
    expect(server.engine.stats().kvCacheUsage).toBe(0);
    expect(await metric('vllm:num_requests_running')).toBe(0);
    expect(await metric('vllm:kv_cache_usage_perc')).toBe(0);
    // Far fewer than 2 × 400 tokens were generated before the abort took effect.
    expect(server.engine.stats().generationTokens).toBeLessThan(50);
  });

  it('a non-streaming client that gives up aborts too', async () => {
    const before = server.engine.stats().generationTokens;
    const controller = new AbortController();
    const pending = fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      signal: controller.signal,
      body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 400 }),
    });
    await until(() => server.engine.stats().numRunning === 1);
    controller.abort();
    await expect(pending).rejects.toThrow();
    await until(() => server.engine.stats().numRunning === 0);
    expect(server.engine.stats().kvCacheUsage).toBe(0);
    expect(server.engine.stats().generationTokens - before).toBeLessThan(100);
  });
});
