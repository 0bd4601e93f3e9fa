// The real server under a bounded mixed load (CPU engine, stories260K, a KV pool small enough that requests
// are preempted): greedy requests still return exactly transformers' text, bad requests get 400s, clients that
// hang up mid-stream are aborted, and afterwards nothing is running, waiting or holding KV blocks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { expected } from './helpers/stories.js';
import { startStoriesServer } from './helpers/stories-server.js';

let server: ServeHandle;
const MODEL = 'stories260K';

beforeAll(async () => {
  // 48 blocks of 16 tokens = 768 tokens of KV for up to 16 sequences of up to 85 tokens each: preemption is certain.
  server = await startStoriesServer({ numKvBlocks: 48, maxNumSeqs: 16, maxNumBatchedTokens: 64 });
  await server.ready;
});
afterAll(() => server?.close(1000));

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
  if (!line) throw new Error(`${name} not exported`);
  return Number(line.split(' ').at(-1));
}

function post(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
}

/** Deterministic PRNG (mulberry32) so the mix is the same every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Outcome =
  | { kind: 'greedy'; i: number; text: string }
  | { kind: 'bad'; status: number }
  | { kind: 'aborted' }
  | { kind: 'sampled'; finish: string };

async function greedy(i: number, stream: boolean): Promise<Outcome> {
  const body = { model: MODEL, prompt: expected[i]!.prompt, max_tokens: 80, temperature: 0, ignore_eos: true, stream };
  const res = await post('/v1/completions', body);
  expect(res.status).toBe(200);
  if (!stream)
    return { kind: 'greedy', i, text: ((await res.json()) as { choices: Array<{ text: string }> }).choices[0]!.text };
  let text = '';
  for (const event of (await res.text()).split('\n\n')) {
    if (!event.startsWith('data: {')) continue;
    text += (JSON.parse(event.slice(6)) as { choices: Array<{ text?: string }> }).choices[0]?.text ?? '';
  }
  return { kind: 'greedy', i, text };
}

async function hangUp(afterChunks: number): Promise<Outcome> {
  const ctl = new AbortController();
  const res = await post(
    '/v1/chat/completions',
    {
      model: MODEL,
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 200,
      ignore_eos: true,
      stream: true,
      temperature: 1,
    },
    ctl.signal,
  );
  const reader = res.body!.getReader();
  try {
    for (let n = 0; n < afterChunks; n++) if ((await reader.read()).done) break;
  } finally {
    ctl.abort();
  }
  return { kind: 'aborted' };
}

async function bad(r: () => number): Promise<Outcome> {
  const bodies = [
    { model: MODEL, prompt: [1, 9999] },
    { model: MODEL, prompt: 'hi', temperature: 7 },
    { model: MODEL, prompt: 'Once upon a time '.repeat(200) },
    { model: MODEL, prompt: 'hi', n: 0 },
  ];
  const res = await post('/v1/completions', bodies[Math.floor(r() * bodies.length)]);
  await res.text();
  return { kind: 'bad', status: res.status };
}

async function sampled(r: () => number): Promise<Outcome> {
  const res = await post('/v1/chat/completions', {
    model: MODEL,
    messages: [{ role: 'user', content: expected[Math.floor(r() * 4)]!.prompt }],
    max_tokens: 1 + Math.floor(r() * 60),
    temperature: 0.8,
    top_p: 0.9,
    n: 1 + Math.floor(r() * 3),
    stop: ['Lily'],
    seed: Math.floor(r() * 1000),
  });
  expect(res.status).toBe(200);
  const json = (await res.json()) as { choices: Array<{ finish_reason: string; message: { content: string } }> };
  for (const c of json.choices) expect(c.message.content).not.toContain('Lily');
  return { kind: 'sampled', finish: json.choices[0]!.finish_reason };
}

describe('mixed load against a preempting KV pool', () => {
  it('120 requests: exact greedy text, 400s for bad input, aborts freed, nothing left behind', async () => {
    const r = rng(7);
    const jobs: Array<Promise<Outcome>> = [];
    for (let k = 0; k < 120; k++) {
      const x = r();
      if (x < 0.35) jobs.push(greedy(k % 4, r() < 0.5));
      else if (x < 0.55) jobs.push(hangUp(1 + Math.floor(r() * 5)));
      else if (x < 0.7) jobs.push(bad(r));
      else jobs.push(sampled(r));
      if (k % 10 === 9) await new Promise((res) => setTimeout(res, 5)); // arrivals spread a little
    }
    const outcomes = await Promise.all(jobs);

    const greedyRuns = outcomes.filter((o): o is Extract<Outcome, { kind: 'greedy' }> => o.kind === 'greedy');
    expect(greedyRuns.length).toBeGreaterThan(20);
    for (const g of greedyRuns) expect(g.text.replace(/^ /, '')).toBe(expected[g.i]!.greedy_text);
    for (const o of outcomes) if (o.kind === 'bad') expect(o.status).toBe(400);
    expect(outcomes.filter((o) => o.kind === 'aborted').length).toBeGreaterThan(10);
    expect(await metric('vllm:num_preemptions_total')).toBeGreaterThan(0);

    // Aborts land within a step; give the loop a moment, then everything must be back.
    for (let t = 0; t < 100 && (await metric('vllm:num_requests_running')) > 0; t++)
      await new Promise((res) => setTimeout(res, 20));
    expect(await metric('vllm:num_requests_running')).toBe(0);
    expect(await metric('vllm:num_requests_waiting')).toBe(0);
    expect(await metric('vllm:kv_cache_usage_perc')).toBe(0);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    // And it still serves.
    expect(((await greedy(0, false)) as { text: string }).text.replace(/^ /, '')).toBe(expected[0]!.greedy_text);
  });
});
