// Values that pass a naive JSON check but would change meaning on the way to the engine: floats that
// become 0 as the float32 the engine stores, integers that wrap in an Int32Array, chat messages OpenAI
// refuses, and the edge cases of /tokenize and /detokenize. Each is a 400 naming the field as the client
// wrote it (never an internal name such as "topP[4]"), and a value at the very edge of a range still passes
// unchanged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ErrorBody, errorCodes } from '../../src/server/errors.js';
import type { TokenizeResponse } from '../../src/server/schemas/tokenize.js';
import { startTestServer, type TestServer } from './helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

async function post(path: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(server.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Fails unless `r` is the error envelope for `code`; after it, `r.json` is typed as that envelope. */
function expectError(
  r: { status: number; json: unknown },
  code: keyof typeof errorCodes,
  param: string | null,
  message?: RegExp,
): asserts r is { status: number; json: ErrorBody } {
  const { error } = r.json as Partial<ErrorBody>;
  expect(error, JSON.stringify(r.json)).toBeDefined();
  expect(error!.code).toBe(code);
  expect(r.status).toBe(errorCodes[code].status);
  expect(error!.param).toBe(param);
  if (message) expect(error!.message).toMatch(message);
  expect(error!.message).not.toMatch(/topP|topK|repetitionPenalty|\[\d+\] must/);
}

const cmpl = (extra: Record<string, unknown>) => ({ prompt: 'Once upon a time', max_tokens: 2, ...extra });
const chat = (extra: Record<string, unknown>) => ({
  messages: [{ role: 'user', content: 'Once upon a time' }],
  max_tokens: 2,
  ...extra,
});

describe('floats are checked as the engine stores them (float32)', () => {
  // The JSON text is sent as written: 1e-320 is a valid (subnormal) double, > 0, and 0 as a float32.
  const cases: Array<[string, string]> = [
    ['top_p', '1e-320'],
    ['top_p', '1e-46'],
    ['repetition_penalty', '1e-320'],
    ['repetition_penalty', '1e-46'],
  ];
  for (const [field, value] of cases) {
    it(`${field}: ${value} is 0 as a 32-bit float, a 400`, async () => {
      const body = `{"prompt": "Once upon a time", "max_tokens": 2, "${field}": ${value}}`;
      expectError(await post('/v1/completions', body), 'invalid_value', field, /32-bit float/);
      const chatBody = `{"messages": [{"role": "user", "content": "Once"}], "max_tokens": 2, "${field}": ${value}}`;
      expectError(await post('/v1/chat/completions', chatBody), 'invalid_value', field, /32-bit float/);
    });
  }

  it('the smallest positive float32 passes and reaches the engine as itself', async () => {
    const tiny = 2 ** -149; // float32's least subnormal
    server.engine.submitted.length = 0;
    expect((await post('/v1/completions', cmpl({ top_p: tiny, repetition_penalty: tiny }))).status).toBe(200);
    const s = server.engine.submitted[0]!.sampling;
    expect(Math.fround(s.topP)).toBeGreaterThan(0);
    expect(Math.fround(s.repetitionPenalty)).toBeGreaterThan(0);
  });

  it('temperature, min_p and penalties that round to 0 keep their meaning (greedy, off), so they pass', async () => {
    for (const field of ['temperature', 'min_p', 'presence_penalty', 'frequency_penalty']) {
      const r = await post('/v1/completions', `{"prompt": "Once", "max_tokens": 2, "${field}": 1e-320}`);
      expect(r.status, field).toBe(200);
    }
  });
});

describe('integers are range-checked before any conversion', () => {
  const cases: Array<[string, Record<string, unknown>, string, string]> = [
    ['top_k beyond int32 (4294967297 would wrap to 1)', { top_k: 4294967297 }, 'top_k', '/v1/completions'],
    ['top_k 2^31', { top_k: 2 ** 31 }, 'top_k', '/v1/chat/completions'],
    ['max_tokens 1e300', { max_tokens: 1e300 }, 'max_tokens', '/v1/completions'],
    ['max_completion_tokens 1e300', { max_completion_tokens: 1e300 }, 'max_completion_tokens', '/v1/chat/completions'],
    ['min_tokens 1e300 (no max_tokens)', { max_tokens: null, min_tokens: 1e300 }, 'min_tokens', '/v1/completions'],
    ['seed 1e300', { seed: 1e300 }, 'seed', '/v1/completions'],
    ['seed below the safe integers', { seed: -1e17 }, 'seed', '/v1/chat/completions'],
    ['priority 1e300', { priority: 1e300 }, 'priority', '/v1/completions'],
    ['best_of 1e300', { best_of: 1e300 }, 'best_of', '/v1/completions'],
    ['logprobs 1e300', { logprobs: 1e300 }, 'logprobs', '/v1/completions'],
    ['top_logprobs 1e300', { logprobs: true, top_logprobs: 1e300 }, 'top_logprobs', '/v1/chat/completions'],
    ['a prompt token id 1e300', { prompt: [1, 1e300] }, 'prompt', '/v1/completions'],
    [
      'a prompt token id 2^32 + 5 (would wrap to 5)',
      {
        prompt: [
          [1, 5],
          [1, 2 ** 32 + 5],
        ],
      },
      'prompt',
      '/v1/completions',
    ],
    [
      'stop_token_ids 2^32 + 2 (would wrap to EOS)',
      { stop_token_ids: [2 ** 32 + 2] },
      'stop_token_ids[0]',
      '/v1/completions',
    ],
  ];
  for (const [what, extra, param, path] of cases) {
    it(what, async () => {
      const body = path === '/v1/completions' ? cmpl(extra) : chat(extra);
      expectError(await post(path, body), 'invalid_value', param);
    });
  }

  it('a logit_bias key beyond the vocabulary is named as written', async () => {
    const key = '9'.repeat(30);
    expectError(
      await post('/v1/completions', cmpl({ logit_bias: { [key]: 1 } })),
      'invalid_value',
      'logit_bias',
      new RegExp(`"${key}"`),
    );
    expectError(
      await post('/v1/completions', cmpl({ logit_bias: { '4294967298': 1 } })),
      'invalid_value',
      'logit_bias',
      /"4294967298"/,
    );
  });

  it('the edges pass unchanged: top_k 2^31 - 1 and -1, seed ±(2^53 - 1), priority ±(2^31 - 1)', async () => {
    server.engine.submitted.length = 0;
    expect(
      (await post('/v1/completions', cmpl({ top_k: 2 ** 31 - 1, seed: 2 ** 53 - 1, priority: 2 ** 31 - 1 }))).status,
    ).toBe(200);
    expect(
      (await post('/v1/completions', cmpl({ top_k: -1, seed: -(2 ** 53 - 1), priority: -(2 ** 31 - 1) }))).status,
    ).toBe(200);
    const [a, b] = server.engine.submitted;
    expect(a!.sampling.topK).toBe(2 ** 31 - 1);
    expect(b!.sampling.topK).toBe(-1);
    expect(a!.priority).toBe(2 ** 31 - 1);
    expect(b!.priority).toBe(-(2 ** 31 - 1));
  });
});

describe('chat messages as OpenAI accepts them', () => {
  const bad: Array<[string, unknown[], keyof typeof errorCodes, string]> = [
    ['a user message without content', [{ role: 'user' }], 'missing_required_parameter', 'messages[0].content'],
    [
      'a user message with null content',
      [{ role: 'user', content: null }],
      'missing_required_parameter',
      'messages[0].content',
    ],
    [
      'a system message without content',
      [{ role: 'system' }, { role: 'user', content: 'x' }],
      'missing_required_parameter',
      'messages[0].content',
    ],
    [
      'a tool message without tool_call_id',
      [
        { role: 'user', content: 'x' },
        { role: 'tool', content: '42' },
      ],
      'missing_required_parameter',
      'messages[1].tool_call_id',
    ],
    [
      'an assistant message with neither content nor tool_calls',
      [{ role: 'user', content: 'x' }, { role: 'assistant' }],
      'missing_required_parameter',
      'messages[1].content',
    ],
    [
      'an assistant message with empty tool_calls and no content',
      [
        { role: 'user', content: 'x' },
        { role: 'assistant', tool_calls: [] },
      ],
      'missing_required_parameter',
      'messages[1].content',
    ],
  ];
  for (const [what, messages, code, param] of bad) {
    it(what, async () => {
      expectError(await post('/v1/chat/completions', { messages, max_tokens: 2 }), code, param);
      expectError(await post('/tokenize', { messages }), code, param);
    });
  }

  it('an assistant message may omit content when it carries tool_calls; a tool message with its id passes', async () => {
    const messages = [
      { role: 'user', content: 'x' },
      { role: 'assistant', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '42' },
    ];
    expect((await post('/v1/chat/completions', { messages, max_tokens: 2 })).status).toBe(200);
    expect((await post('/tokenize', { messages })).status).toBe(200);
  });
});

describe('/tokenize and /detokenize edge cases', () => {
  it('/detokenize of no tokens is a 400, not a 500', async () => {
    expectError(await post('/detokenize', { tokens: [] }), 'invalid_value', 'tokens');
  });

  it('/detokenize of out-of-range or wrapping ids is a 400', async () => {
    expectError(await post('/detokenize', { tokens: [1, 1e300] }), 'invalid_value', 'tokens[1]');
    expectError(await post('/detokenize', { tokens: [2 ** 32 + 5] }), 'invalid_value', 'tokens[0]');
    expectError(await post('/detokenize', { tokens: [1, 600] }), 'invalid_value', 'tokens');
    expectError(await post('/detokenize', { tokens: [-1] }), 'invalid_value', 'tokens[0]');
  });

  it('/tokenize: an empty prompt is its special tokens; no prompt, both, or no messages are 400s', async () => {
    const empty = await post('/tokenize', { prompt: '' });
    expect(empty.status).toBe(200);
    expect((empty.json as TokenizeResponse).tokens).toEqual([1]); // the BOS the tokenizer adds
    expect((await post('/tokenize', { prompt: '', add_special_tokens: false })).json).toMatchObject({
      count: 0,
      tokens: [],
    });
    expectError(await post('/tokenize', {}), 'missing_required_parameter', 'prompt');
    expectError(
      await post('/tokenize', { prompt: 'x', messages: [{ role: 'user', content: 'x' }] }),
      'invalid_value',
      'prompt',
    );
    expectError(await post('/tokenize', { messages: [] }), 'invalid_value', 'messages');
    expectError(await post('/tokenize', { prompt: 5 }), 'invalid_value', 'prompt');
  });

  it('/detokenize of one token round-trips with /tokenize', async () => {
    const t = await post('/tokenize', { prompt: 'Once upon a time', add_special_tokens: false });
    const d = await post('/detokenize', { tokens: (t.json as TokenizeResponse).tokens });
    expect(d).toMatchObject({ status: 200, json: { prompt: 'Once upon a time' } });
  });
});
