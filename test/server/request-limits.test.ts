// One request cannot fan out past the server's limits: prompts × n is bounded per request (by --max-num-seqs,
// and by --max-queue when that is smaller), and the wait queue is counted in sequences, not requests. A
// refused request is refused before any work: nothing is tokenized, nothing reaches the engine.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type ErrorBody, errorCodes } from '../../src/server/errors.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const servers: TestServer[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(opts: Parameters<typeof startTestServer>[0]): Promise<TestServer> {
  const s = await startTestServer(opts);
  servers.push(s);
  return s;
}

async function post(s: TestServer, path: string, body: unknown) {
  const res = await fetch(s.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json: unknown = await res.json();
  return { status: res.status, headers: res.headers, json };
}

/** Fails unless `r` is the error envelope for `code`; after it, `r.json` is typed as that envelope. */
function expectError(
  r: { status: number; json: unknown },
  code: keyof typeof errorCodes,
  param: string | null,
): asserts r is { status: number; json: ErrorBody } {
  const { error } = r.json as Partial<ErrorBody>;
  expect(error, JSON.stringify(r.json)).toBeDefined();
  expect(error).toMatchObject({ code, param, type: errorCodes[code].type });
  expect(r.status).toBe(errorCodes[code].status);
}

/** A stream the fake engine keeps generating (one token per tick) until the test cancels it. */
async function openStream(s: TestServer, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${s.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 200, stream: true, ...body }),
  });
}

describe('sequences per request', () => {
  it('1,000 token-id prompts × n 128 under --max-queue 8 is a 400, and nothing is queued', async () => {
    const s = await start({ maxQueue: 8 });
    const prompt = Array.from({ length: 1000 }, (_, i) => [1, 3 + (i % 500)]);
    const r = await post(s, '/v1/completions', { prompt, n: 128, max_tokens: 1 });
    expectError(r, 'invalid_value', 'prompt');
    expect(r.json.error.message).toMatch(/1000 prompts × n 128 = 128000 sequences/);
    expect(r.json.error.message).toMatch(/--max-queue 8/);
    expect(s.engine.submitted).toHaveLength(0);
  });

  it('the bound is --max-num-seqs when the queue is unbounded or larger', async () => {
    const s = await start({ maxQueue: 0, maxNumSeqs: 16 });
    expect((await post(s, '/v1/completions', { prompt: ['Once', 'Lily'], n: 8, max_tokens: 1 })).status).toBe(200);
    const over = await post(s, '/v1/completions', { prompt: ['Once', 'Lily', 'Tom'], n: 6, max_tokens: 1 });
    expectError(over, 'invalid_value', 'n');
    expect(over.json.error.message).toMatch(/3 prompts × n 6 = 18 sequences.*at most 16.*--max-num-seqs 16/);
    expectError(
      await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], n: 17, max_tokens: 1 }),
      'invalid_value',
      'n',
    );
    expect(s.engine.submitted).toHaveLength(16);
  });

  it('a refused request is never tokenized', async () => {
    const s = await start({ maxQueue: 4 });
    const encode = vi.spyOn(s.tokenizer, 'encode');
    const prompts = Array.from({ length: 5 }, () => 'Once upon a time '.repeat(20));
    expectError(await post(s, '/v1/completions', { prompt: prompts, max_tokens: 1 }), 'invalid_value', 'prompt');
    expectError(
      await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], n: 5, max_tokens: 1 }),
      'invalid_value',
      'n',
    );
    expect(encode).not.toHaveBeenCalled();
  });
});

describe('the wait queue counts sequences', () => {
  it('n choices take n places: a request that does not fit is a 503 before it is tokenized, a smaller one still fits', async () => {
    const s = await start({ maxQueue: 8, engine: { maxRunning: 1, tickMs: 20 } });
    const running = await openStream(s, {});
    const waiting = await openStream(s, { n: 6 });
    expect(s.engine.stats()).toMatchObject({ numRunning: 1, numWaiting: 6 });

    const encode = vi.spyOn(s.tokenizer, 'encode');
    const full = await post(s, '/v1/completions', { prompt: 'Once upon a time', n: 3, max_tokens: 1 });
    expectError(full, 'queue_full', null);
    expect(full.headers.get('retry-after')).toBe('1');
    expect(full.json.error.message).toMatch(/6 sequences waiting.*adds 3.*--max-queue 8/);
    const chatFull = await post(s, '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'x' }],
      n: 3,
      max_tokens: 1,
    });
    expectError(chatFull, 'queue_full', null);
    expect(encode).not.toHaveBeenCalled();

    const fits = await openStream(s, { n: 2 });
    expect(fits.status).toBe(200);
    expect(s.engine.stats().numWaiting).toBe(8);
    await Promise.all([running.body!.cancel(), waiting.body!.cancel(), fits.body!.cancel()]);
  });
});
