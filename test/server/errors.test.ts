// Every error the API documents, in OpenAI's envelope with the right status.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ErrorBody, errorCodes } from '../../src/server/errors.js';
import { MODEL, startTestServer, type TestServer } from './helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

async function post(s: TestServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(s.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: JSON.parse(text.startsWith('data: ') ? '{}' : text) };
}

/** Asserts the envelope shape and that status and type agree with errors.ts for the code. */
function expectError(r: { status: number; json: ErrorBody }, code: keyof typeof errorCodes, param?: string | null) {
  expect(r.json.error).toBeDefined();
  expect(Object.keys(r.json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(r.json.error.code).toBe(code);
  expect(r.status).toBe(errorCodes[code].status);
  expect(r.json.error.type).toBe(errorCodes[code].type);
  expect(typeof r.json.error.message).toBe('string');
  if (param !== undefined) expect(r.json.error.param).toBe(param);
}

const chat = (extra: Record<string, unknown>) => ({
  messages: [{ role: 'user', content: 'Once upon a time' }],
  max_tokens: 4,
  ...extra,
});
const cmpl = (extra: Record<string, unknown>) => ({ prompt: 'Once upon a time', max_tokens: 4, ...extra });

describe('400 invalid_request_error', () => {
  const outOfRange: Array<[string, Record<string, unknown>, string]> = [
    ['temperature above 2', { temperature: 2.5 }, 'temperature'],
    ['temperature below 0', { temperature: -0.1 }, 'temperature'],
    ['top_p 0', { top_p: 0 }, 'top_p'],
    ['top_p above 1', { top_p: 1.01 }, 'top_p'],
    ['n 0', { n: 0 }, 'n'],
    ['n 129', { n: 129 }, 'n'],
    ['presence_penalty 2.5', { presence_penalty: 2.5 }, 'presence_penalty'],
    ['frequency_penalty -3', { frequency_penalty: -3 }, 'frequency_penalty'],
    ['top_logprobs 21', { logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
    ['logit_bias 101', { logit_bias: { '5': 101 } }, 'logit_bias[5]'],
    ['max_tokens 0', { max_tokens: 0 }, 'max_tokens'],
    ['five stop strings', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    ['a number as a string', { temperature: '0.5' }, 'temperature'],
    ['a bad role', { messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
  ];
  for (const [what, extra, param] of outOfRange) {
    it(`chat: ${what}`, async () =>
      expectError(await post(server, '/v1/chat/completions', chat(extra)), 'invalid_value', param));
  }

  it('completions: logprobs 21, token ids beyond the vocabulary', async () => {
    expectError(await post(server, '/v1/completions', cmpl({ logprobs: 21 })), 'invalid_value', 'logprobs');
    expectError(await post(server, '/v1/completions', cmpl({ prompt: [1, 512] })), 'invalid_value', 'prompt');
    expectError(
      await post(server, '/v1/completions', cmpl({ logit_bias: { '512': 1 } })),
      'invalid_value',
      'logit_bias',
    );
    expectError(
      await post(server, '/v1/completions', cmpl({ stop_token_ids: [9999] })),
      'invalid_value',
      'stop_token_ids',
    );
  });

  it("a union field's error names every form it accepts, not only the first", async () => {
    const cases: Array<[string, object, string, RegExp]> = [
      ['/v1/completions', cmpl({ prompt: [-1, 5] }), 'prompt', /array of token ids/],
      ['/v1/completions', cmpl({ prompt: [] }), 'prompt', /not empty/],
      ['/v1/completions', cmpl({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop', /at most 4 strings/],
      [
        '/v1/chat/completions',
        chat({ messages: [{ role: 'user', content: 5 }] }),
        'messages[0].content',
        /array of content parts/,
      ],
    ];
    for (const [url, body, param, message] of cases) {
      const r = await post(server, url, body);
      expectError(r, 'invalid_value', param);
      expect(r.json.error.message).toMatch(message);
    }
    const t = await post(server, '/v1/completions', cmpl({ temperature: 5 }));
    expect(t.json.error.message).toMatch(/temperature.*<= 2/);
  });

  it('top_logprobs without logprobs', async () => {
    expectError(await post(server, '/v1/chat/completions', chat({ top_logprobs: 2 })), 'invalid_value', 'top_logprobs');
  });

  it('missing messages / prompt, bad JSON, empty body', async () => {
    expectError(await post(server, '/v1/chat/completions', { model: MODEL }), 'missing_required_parameter', 'messages');
    expectError(await post(server, '/v1/completions', { model: MODEL }), 'missing_required_parameter', 'prompt');
    expectError(await post(server, '/v1/chat/completions', '{"messages": ['), 'invalid_json');
    expectError(await post(server, '/v1/chat/completions', ''), 'invalid_json');
  });

  it('context_length_exceeded: a prompt or max_tokens beyond the context', async () => {
    const long = await post(
      server,
      '/v1/completions',
      cmpl({ prompt: 'Once upon a time '.repeat(200), max_tokens: null }),
    );
    expectError(long, 'context_length_exceeded', 'prompt');
    expect(long.json.error.message).toMatch(/maximum context length is 512 tokens/);
    expectError(
      await post(server, '/v1/chat/completions', chat({ max_tokens: 600 })),
      'context_length_exceeded',
      'max_tokens',
    );
  });

  it('known but unsupported features are refused, never ignored', async () => {
    // Tools and response_format are implemented: a shape they do not take is invalid_value, naming the field.
    const tools = [{ type: 'retrieval' }];
    expectError(await post(server, '/v1/chat/completions', chat({ tools })), 'invalid_value', 'tools[0].type');
    expectError(
      await post(server, '/v1/chat/completions', chat({ response_format: { type: 'yaml' } })),
      'invalid_value',
      'response_format.type',
    );
    expectError(
      await post(server, '/v1/chat/completions', chat({ functions: [{ name: 'f' }] })),
      'unsupported_parameter',
      'functions',
    );
    expectError(await post(server, '/v1/completions', cmpl({ best_of: 3 })), 'unsupported_parameter', 'best_of');
    expectError(await post(server, '/v1/completions', cmpl({ suffix: 'end' })), 'unsupported_parameter', 'suffix');
    const image = { role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x' } }] };
    expectError(
      await post(server, '/v1/chat/completions', chat({ messages: [image] })),
      'unsupported_parameter',
      'messages[0].content[0].type',
    );
  });

  it('accepts the harmless defaults of unsupported features and what changes nothing here', async () => {
    const r = await post(
      server,
      '/v1/chat/completions',
      chat({
        tools: [],
        response_format: { type: 'text' },
        best_of: 1,
        user: 'u',
        use_beam_search: false,
        length_penalty: 1,
        store: false,
        spaces_between_special_tokens: true,
        metadata: { a: 'b' },
        parallel_tool_calls: true,
        service_tier: 'auto',
        modalities: ['text'],
      }),
    );
    expect(r.status).toBe(200);
  });

  it('an unknown field is a 400, as OpenAI answers, also inside stream_options', async () => {
    for (const [path, body] of [
      ['/v1/chat/completions', chat({ frobnicate: 3 })],
      ['/v1/completions', cmpl({ frobnicate: 3 })],
    ] as const) {
      const res = await post(server, path, body);
      expectError(res, 'unknown_parameter', 'frobnicate');
    }
    const res = await post(
      server,
      '/v1/completions',
      cmpl({ stream: true, stream_options: { include_usage: true, frob: 1 } }),
    );
    expect(res.json.error).toEqual({
      code: 'unknown_parameter',
      type: 'invalid_request_error',
      param: 'stream_options.frob',
      message: 'Unrecognized request argument supplied: stream_options.frob',
    });
  });

  it("vLLM's extras kvserve does not implement are refused by name", async () => {
    const cases: Array<[string, unknown]> = [
      ['use_beam_search', true],
      ['length_penalty', 0.5],
      ['prompt_embeds', 'AAAA'],
      ['logits_processors', ['x']],
      ['spaces_between_special_tokens', false],
      ['cache_salt', 's'],
      ['kv_transfer_params', {}],
      ['vllm_xargs', {}],
      ['return_token_ids', true],
      ['documents', []],
      ['chat_template', '{{ x }}'],
      ['mm_processor_kwargs', {}],
      ['structural_tag', 'x'],
      ['guided_whitespace_pattern', ' '],
      ['store', true],
      ['reasoning_effort', 'low'],
      ['modalities', ['audio']],
    ];
    for (const [field, value] of cases) {
      const res = await post(server, '/v1/chat/completions', chat({ [field]: value }));
      expectError(res, 'unsupported_parameter', field);
      expect(res.json.error.message).toMatch(/not supported by kvserve/);
    }
    expectError(await post(server, '/v1/chat/completions', chat({ echo: true })), 'unsupported_parameter', 'echo');
    expectError(
      await post(server, '/v1/chat/completions', chat({ add_special_tokens: true })),
      'unsupported_parameter',
      'add_special_tokens',
    );
  });

  it('a model with no chat template', async () => {
    const s = await startTestServer({ chatTemplate: null });
    try {
      expectError(await post(s, '/v1/chat/completions', chat({})), 'chat_template_missing');
      expect((await post(s, '/v1/completions', cmpl({}))).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('the openai client sees status and code', async () => {
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'x', maxRetries: 0 });
    const err = await client.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe('context_length_exceeded');
  });
});

describe('401, 404, 413', () => {
  it('401 when the key is missing or wrong; /health and /metrics stay open', async () => {
    const s = await startTestServer({ apiKey: 'sekrit' });
    try {
      expectError(await post(s, '/v1/completions', cmpl({})), 'invalid_api_key');
      expectError(await post(s, '/v1/completions', cmpl({}), { authorization: 'Bearer sekri' }), 'invalid_api_key');
      expectError(await post(s, '/v1/completions', cmpl({}), { authorization: 'Bearer sekrit2' }), 'invalid_api_key');
      expect((await fetch(`${s.url}/v1/models`)).status).toBe(401);
      expect((await post(s, '/v1/completions', cmpl({}), { authorization: 'Bearer sekrit' })).status).toBe(200);
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
      expect((await fetch(`${s.url}/metrics`)).status).toBe(200);
      const client = new OpenAI({ baseURL: s.baseURL, apiKey: 'wrong', maxRetries: 0 });
      await expect(client.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    } finally {
      await s.close();
    }
  });

  it('404 model_not_found and unknown routes', async () => {
    expectError(await post(server, '/v1/chat/completions', chat({ model: 'gpt-4' })), 'model_not_found', 'model');
    expectError(await post(server, '/v1/completions', cmpl({ model: 'gpt-4' })), 'model_not_found', 'model');
    const res = await fetch(`${server.url}/v1/models/gpt-4`);
    expectError({ status: res.status, json: (await res.json()) as ErrorBody }, 'model_not_found');
    const nf = await fetch(`${server.url}/v1/nothing`);
    expectError({ status: nf.status, json: (await nf.json()) as ErrorBody }, 'not_found');
  });

  it('413 for a body over --body-limit', async () => {
    const s = await startTestServer({ bodyLimitBytes: 2048 });
    try {
      expectError(await post(s, '/v1/completions', cmpl({ prompt: 'x'.repeat(4096) })), 'request_too_large');
    } finally {
      await s.close();
    }
  });
});

describe('503 and 500', () => {
  it('503 with Retry-After when the wait queue is full', async () => {
    const s = await startTestServer({ maxQueue: 1, engine: { maxRunning: 1, tickMs: 20 } });
    try {
      const body = JSON.stringify(cmpl({ max_tokens: 50, stream: true }));
      const opts = { method: 'POST', headers: { 'content-type': 'application/json' }, body };
      const running = await fetch(`${s.url}/v1/completions`, opts);
      const waiting = await fetch(`${s.url}/v1/completions`, opts);
      expect(s.engine.stats()).toMatchObject({ numRunning: 1, numWaiting: 1 });
      const r = await post(s, '/v1/completions', cmpl({}));
      expectError(r, 'queue_full');
      expect(r.headers.get('retry-after')).toBe('1');
      await Promise.all([running.body!.cancel(), waiting.body!.cancel()]);
    } finally {
      await s.close();
    }
  });

  it('503 while the model loads: /health too, with Retry-After', async () => {
    const s = await startTestServer({ loading: true });
    try {
      const h = await fetch(`${s.url}/health`);
      expect(h.status).toBe(503);
      expect(h.headers.get('retry-after')).toBe('5');
      const r = await post(s, '/v1/completions', cmpl({}));
      expectError(r, 'model_loading');
      expect(r.headers.get('retry-after')).toBe('5');
      expect((await fetch(`${s.url}/v1/models`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('500 engine_fault, or an error event once the stream has started', async () => {
    server.engine.failNext = 'CUDA error: an illegal memory access';
    const r = await post(server, '/v1/completions', cmpl({}));
    expectError(r, 'engine_fault');
    // The detail is for the server's log; the client gets the request id to quote.
    expect(r.json.error.message).not.toMatch(/illegal memory access/);
    expect(r.json.error.message).toContain(r.headers.get('x-request-id'));

    server.engine.failNext = 'boom';
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat({ stream: true })),
    });
    expect(res.status).toBe(200);
    const raw = await res.text();
    const events = raw.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const err = JSON.parse(events.at(-2)!.slice(6));
    expect(err.error).toMatchObject({ code: 'engine_fault', type: 'server_error' });
    expect(err.error.message).toContain(res.headers.get('x-request-id'));
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'x', maxRetries: 0 });
    server.engine.failNext = 'boom';
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    await expect(
      (async () => {
        for await (const _ of stream);
      })(),
    ).rejects.toThrow(/engine failed/);
  });
});
