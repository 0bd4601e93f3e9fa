// /metrics (vLLM's names and model_name label, fed by real requests; the kvserve_ aliases), /health, /tokenize,
// /detokenize.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorBody } from '../../src/server/errors.js';
import type { DetokenizeResponse, TokenizeResponse } from '../../src/server/schemas/tokenize.js';
import { rawConnect } from './helpers/raw-http.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { expected } from './helpers/stories.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

const post = (path: string, body: unknown) =>
  fetch(server.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  const values = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const name = line.slice(0, line.search(/[{ ]/));
    if (!line.includes('le=')) values.set(name, (values.get(name) ?? 0) + Number(line.split(' ').at(-1)));
  }
  return values;
}

describe('/metrics', () => {
  const names = [
    'vllm:time_to_first_token_seconds_count',
    'vllm:inter_token_latency_seconds_count',
    'vllm:e2e_request_latency_seconds_count',
    'vllm:request_queue_time_seconds_count',
    'vllm:num_requests_running',
    'vllm:num_requests_waiting',
    'vllm:kv_cache_usage_perc',
    'vllm:prompt_tokens_total',
    'vllm:generation_tokens_total',
    'vllm:prefix_cache_queries_total',
    'vllm:prefix_cache_hits_total',
    'vllm:num_preemptions_total',
  ];

  it('exports every metric, and requests move them', async () => {
    const before = await scrape();
    for (const n of names) expect(before.has(n), n).toBe(true);
    expect(before.get('vllm:num_requests_running')).toBe(0);
    expect(before.get('vllm:kv_cache_usage_perc')).toBe(0);

    const r = await post('/v1/completions', { prompt: expected[0]!.prompt, max_tokens: 10, n: 2 });
    expect(r.status).toBe(200);
    const after = await scrape();
    const delta = (n: string) => after.get(n)! - before.get(n)!;
    expect(delta('vllm:time_to_first_token_seconds_count')).toBe(2);
    expect(delta('vllm:e2e_request_latency_seconds_count')).toBe(2);
    expect(delta('vllm:request_queue_time_seconds_count')).toBe(2);
    expect(delta('vllm:inter_token_latency_seconds_count')).toBe(18); // 9 gaps in 10 tokens, per choice
    expect(delta('vllm:generation_tokens_total')).toBe(20);
    expect(delta('vllm:prompt_tokens_total')).toBe(10);
    expect(delta('vllm:request_success_total')).toBe(2);
    expect(delta('vllm:request_prompt_tokens_count')).toBe(2);
    expect(delta('vllm:request_prompt_tokens_sum')).toBe(10);
    expect(delta('vllm:request_generation_tokens_sum')).toBe(20);
    expect(delta('vllm:time_per_output_token_seconds_count')).toBe(18);
    expect(after.get('vllm:num_requests_running')).toBe(0);
    // The deprecated kvserve_ names carry the same values.
    expect(delta('kvserve_generation_tokens_total')).toBe(20);
    expect(delta('kvserve_time_to_first_token_seconds_count')).toBe(2);
  });

  it('TTFT counts from the arrival of the request: a body sent 300 ms after its headers is in it', async () => {
    const ttft = async () => (await scrape()).get('vllm:time_to_first_token_seconds_sum')!;
    const before = await ttft();
    const body = JSON.stringify({ prompt: [1, 2, 3], max_tokens: 1 });
    const x = await rawConnect(
      server.url,
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    );
    await new Promise((r) => setTimeout(r, 300));
    x.write(body);
    await x.closed;
    expect(x.received()).toMatch(/^HTTP\/1\.1 200/);
    // The server may read the headers a little after the client's 300 ms began (a loaded machine has measured
    // 299.9 ms); counted from the body instead, TTFT would be a few milliseconds.
    expect((await ttft()) - before).toBeGreaterThanOrEqual(0.25);
  });

  it("every vllm: series carries vLLM's model_name label, finish reasons as finished_reason", async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const series = text.split('\n').filter((l) => l.startsWith('vllm:'));
    expect(series.length).toBeGreaterThan(20);
    for (const l of series) expect(l, l).toMatch(/model_name="stories260K"/);
    for (const reason of ['stop', 'length', 'abort', 'error']) {
      expect(text).toMatch(new RegExp(`^vllm:request_success_total\\{[^}]*finished_reason="${reason}"`, 'm'));
    }
  });
});

describe('/health, /tokenize, /detokenize', () => {
  it('health is 200 once the model serves', async () => {
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
  });

  it("tokenize gives the tokenizer's ids (with BOS by default), detokenize inverts", async () => {
    const t = await (await post('/tokenize', { prompt: expected[2]!.prompt })).json();
    expect(t).toEqual({ count: expected[2]!.prompt_ids.length, max_model_len: 512, tokens: expected[2]!.prompt_ids });
    const noBos = (await (
      await post('/tokenize', { prompt: expected[2]!.prompt, add_special_tokens: false })
    ).json()) as TokenizeResponse;
    expect(noBos.tokens).toEqual(expected[2]!.prompt_ids.slice(1));
    const d = (await (await post('/detokenize', { tokens: expected[0]!.greedy_ids })).json()) as DetokenizeResponse;
    expect(d.prompt.trimStart()).toBe(expected[0]!.greedy_text);
  });

  it('tokenize needs a prompt or messages; ids beyond the vocabulary are 400', async () => {
    expect((await post('/tokenize', {})).status).toBe(400);
    const bad = await post('/detokenize', { tokens: [1, 99999] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as ErrorBody).error.param).toBe('tokens');
  });
});
