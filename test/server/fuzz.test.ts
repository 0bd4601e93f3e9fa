// Fuzzing every endpoint of the real server (CPU engine, stories260K, context cut to 64 so that any valid
// body is cheap) with fast-check: arbitrary JSON, near-valid bodies with fields replaced by hostile values,
// broken JSON, odd content types, methods, paths and header values, then raw bytes on the socket. Never a
// 5xx, never a crash (an exception escaping the server fails the test run), every error in the envelope,
// every answer with its X-Request-Id; and afterwards the server still answers greedy requests exactly.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { metricValue, until } from './helpers/disconnect.js';
import { rawConnect } from './helpers/raw-http.js';
import { expected } from './helpers/stories.js';
import { startStoriesServer } from './helpers/stories-server.js';

let server: ServeHandle;
beforeAll(async () => {
  server = await startStoriesServer({ maxModelLen: 64, headerTimeout: 0.5, requestBodyTimeout: 1 });
  await server.ready;
});
afterAll(() => server?.close(1000));

const MODEL = 'stories260K';

/** Values that break naive handlers: extremes, wrong types, float32 edge cases, deep and wide structures. */
const hostile = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    0,
    -1,
    1,
    2,
    1e308,
    -1e308,
    5e-324,
    2 ** 31,
    2 ** 31 - 1,
    -(2 ** 31),
    2 ** 32,
    2 ** 53,
    2 ** 64,
    1.0000001,
    0.99999999,
    1e-45,
    3.4e38,
    3.5e38,
    '',
    ' ',
    '0',
    '1e3',
    'null',
    '\u0000',
    '\ud800',
    '😀'.repeat(50),
    'a'.repeat(5000),
    true,
    false,
    null,
    [],
    {},
    [null],
    [[]],
    { '': 1 },
    [0],
    [-1],
    [511],
    [512],
    [1, 2, 3],
    Array.from({ length: 300 }, (_, i) => i),
    { '0': 100 },
    { '99999999999': 1 },
  ),
);

/** Values a field could well hold, so that many fuzzed bodies get past validation into the handlers. */
const plausible = fc.oneof(
  fc.integer({ min: 0, max: 8 }),
  fc.double({ min: 0, max: 1, noNaN: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('Once', ['a', 'b']),
);

const fields = [
  'model',
  'prompt',
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'top_k',
  'min_p',
  'n',
  'stop',
  'seed',
  'presence_penalty',
  'frequency_penalty',
  'repetition_penalty',
  'logit_bias',
  'logprobs',
  'top_logprobs',
  'echo',
  'stream',
  'stream_options',
  'ignore_eos',
  'min_tokens',
  'stop_token_ids',
  'skip_special_tokens',
  'include_stop_str_in_output',
  'priority',
  'best_of',
  'suffix',
  'tools',
  'tool_choice',
  'response_format',
  'add_generation_prompt',
  'continue_final_message',
  'chat_template_kwargs',
  'add_special_tokens',
  'tokens',
  'user',
  'n_probs',
];

const baseBodies: Record<string, object> = {
  '/v1/completions': { model: MODEL, prompt: 'Once upon a time', max_tokens: 4 },
  '/v1/chat/completions': { model: MODEL, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 4 },
  '/tokenize': { model: MODEL, prompt: 'Once upon a time' },
  '/detokenize': { model: MODEL, tokens: [1, 403, 407] },
};

const message = fc.record(
  {
    role: fc.oneof(fc.constantFrom('system', 'user', 'assistant', 'developer', 'tool'), fc.string()),
    content: fc.oneof(fc.string(), hostile),
    name: hostile,
  },
  { requiredKeys: ['role'] },
);

/** A body for `path`: near-valid with some fields replaced, arbitrary JSON, or not JSON at all. */
const bodyFor = (path: string) =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .dictionary(fc.constantFrom(...fields), fc.oneof(hostile, plausible), { maxKeys: 4 })
        .map((over) => JSON.stringify({ ...baseBodies[path], ...over })),
    },
    {
      weight: 2,
      arbitrary: fc
        .array(message, { maxLength: 5 })
        .map((messages) => JSON.stringify({ ...baseBodies[path], messages })),
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.constant('') },
  );

const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 150,
});
const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}$/);

const request = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .constantFrom(...Object.keys(baseBodies))
      .chain((path) => fc.record({ method: fc.constant('POST'), path: fc.constant(path), body: bodyFor(path) })),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
      path: fc.oneof(
        fc.constantFrom(
          '/v1/models',
          `/v1/models/${MODEL}`,
          '/health',
          '/metrics',
          '/v1/completions',
          '/v1/chat/completions',
          '/tokenize',
          '/',
        ),
        fc.webPath().map((p) => p || '/'),
        printable.map((s) => `/v1/models/${encodeURIComponent(s)}`),
      ),
      body: fc.option(
        fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
        { nil: undefined },
      ),
    }),
  },
);

const headers = fc.record(
  {
    'content-type': fc.oneof(
      fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/octet-stream',
      ),
      printable,
    ),
    'x-request-id': printable,
    authorization: printable,
    accept: printable,
    extra: fc.tuple(token, printable),
  },
  { requiredKeys: [] },
);

describe('fuzzing the HTTP API', () => {
  it('2,000 requests across every endpoint: never a 5xx, always the envelope and a request id', async () => {
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, headers, async (req, h) => {
        const hs: Record<string, string> = {};
        for (const [k, v] of Object.entries(h)) if (k !== 'extra') hs[k] = v as string;
        if (
          h.extra &&
          ![
            'content-length',
            'transfer-encoding',
            'host',
            'connection',
            'expect',
            'upgrade',
            'te',
            'trailer',
            'keep-alive',
          ].includes(h.extra[0].toLowerCase())
        )
          hs[h.extra[0]] = h.extra[1];
        const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : req.body;
        const res = await fetch(server.url + req.path, {
          method: req.method,
          headers: hs,
          body,
          signal: AbortSignal.timeout(20_000),
        });
        const text = await res.text();
        seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
        expect(res.status, `${req.method} ${req.path} ${body?.slice(0, 300)} → ${text.slice(0, 300)}`).toBeLessThan(
          500,
        );
        expect(res.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
        if (res.status >= 400 && req.method !== 'HEAD') {
          const err = JSON.parse(text).error;
          expect(Object.keys(err).sort()).toEqual(['code', 'message', 'param', 'type']);
          expect(err.message).not.toMatch(/topP|topK|minP|\w+\[\d+\]:|native|addon/);
        }
        if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
          expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
          expect(text).not.toContain('"server_error"');
        }
      }),
      { numRuns: 2000, seed: Number(process.env.FUZZ_SEED ?? 10) },
    );
    // The fuzz reached the handlers, not only the validators.
    expect(seen.get(200) ?? 0).toBeGreaterThan(100);
    expect(seen.get(400) ?? 0).toBeGreaterThan(100);
  });

  it('300 raw byte strings on the socket: an envelope answer or a closed connection, never a 5xx', async () => {
    const junk = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc
        .tuple(
          fc.constantFrom('GET', 'POST', 'BREW', 'get', ''),
          printable,
          fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'HTTP/9.9', ''),
          fc.array(fc.tuple(printable, printable), { maxLength: 4 }),
        )
        .map(([m, p, v, hs]) => `${m} /${p} ${v}\r\n${hs.map(([k, val]) => `${k}: ${val}`).join('\r\n')}\r\n\r\n`),
    );
    const samples = fc.sample(junk, { numRuns: 300, seed: 10 });
    for (let i = 0; i < samples.length; i += 50) {
      await Promise.all(
        samples.slice(i, i + 50).map(async (bytes) => {
          const x = await rawConnect(server.url, Buffer.from(bytes, 'latin1'));
          await Promise.race([x.closed, new Promise((r) => setTimeout(r, 5000))]);
          x.destroy();
          for (const m of x.received().matchAll(/(?:^|\r\n)HTTP\/1\.1 (\d{3}) /g))
            expect(Number(m[1]), JSON.stringify(bytes)).toBeLessThan(500);
        }),
      );
    }
  });

  it('afterwards: nothing left running, and greedy answers are exactly the reference', async () => {
    await until(async () => (await metricValue(server.url, 'vllm:num_requests_running')) === 0, 10_000);
    expect(await metricValue(server.url, 'vllm:kv_cache_usage_perc')).toBe(0);
    for (const e of expected) {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: e.prompt, max_tokens: 40, temperature: 0, ignore_eos: true }),
      });
      const text = ((await res.json()) as { choices: Array<{ text: string }> }).choices[0]!.text.replace(/^ /, '');
      // The context is cut to 64 here: the first 40 tokens of transformers' 80.
      expect(text.length).toBeGreaterThan(40);
      expect(e.greedy_text.startsWith(text)).toBe(true);
    }
  });
});
