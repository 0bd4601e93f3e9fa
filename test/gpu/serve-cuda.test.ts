// `kvserve serve --device cuda` end to end on the GPU: the real server (startServe) with the CUDA engine and
// stories260K, through the official openai client, streamed and not: greedy text equals transformers'
// (expected.json), alone and with every prompt in flight at once; structured outputs and forced tool calls
// (the CUDA sampler's allowed-token masks) valid by ajv, beside unconstrained requests that stay on the reference.
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { expected } from '../server/helpers/stories.js';
import { record } from './gpu-harness.js';
import { startStoriesServer } from '../server/helpers/stories-server.js';

let server: ServeHandle;
let client: OpenAI;
const MODEL = 'stories260K';
const sameText = (got: string, i: number) => expect(got.replace(/^ /, '')).toBe(expected[i]!.greedy_text);

beforeAll(async () => {
  server = await startStoriesServer({ device: 'cuda' });
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => server?.close(1000));

describe('kvserve serve --device cuda (stories260K)', () => {
  it('streams a chat completion equal to the reference', async () => {
    const t0 = performance.now();
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: expected[0]!.prompt }],
      max_tokens: 80,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    let text = '',
      chunks = 0,
      first = 0;
    for await (const chunk of stream) {
      if (!first) first = performance.now() - t0;
      text += chunk.choices[0]?.delta.content ?? '';
      chunks++;
    }
    sameText(text, 0);
    expect(chunks).toBeGreaterThan(10); // really streamed
    record('serve cuda stream', { chunks, firstChunkMs: first, totalMs: performance.now() - t0 });
  });

  it('all prompts concurrently (completions, streamed) equal the reference', async () => {
    const texts = await Promise.all(
      expected.map(async (e) => {
        const stream = await client.completions.create({
          model: MODEL,
          prompt: e.prompt,
          max_tokens: 80,
          temperature: 0,
          stream: true,
          ignore_eos: true,
        } as OpenAI.CompletionCreateParamsStreaming);
        let t = '';
        for await (const c of stream) t += c.choices[0]?.text ?? '';
        return t;
      }),
    );
    for (const [i, t] of texts.entries()) sameText(t, i);
  });

  it('seeded sampling with logprobs is reproducible', async () => {
    const ask = () =>
      client.completions.create({
        model: MODEL,
        prompt: expected[1]!.prompt,
        max_tokens: 40,
        temperature: 0.9,
        top_p: 0.95,
        seed: 7,
        logprobs: 2,
      });
    const [a, b] = await Promise.all([ask(), ask()]);
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
    expect(a.choices[0]!.logprobs!.token_logprobs!.every((v) => Number.isFinite(v) && v <= 0)).toBe(true);
  });

  const person = {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 12 },
      age: { type: 'integer', minimum: 0, maximum: 120 },
      pets: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
    },
    required: ['name', 'age', 'pets'],
    additionalProperties: false,
  };
  const validPerson = new Ajv({ strict: false }).compile(person);

  it('structured outputs on the GPU sampler: valid JSON by ajv and a full regex match, while unconstrained requests beside them stay on the reference', async () => {
    const [json, regex, ...free] = await Promise.all([
      client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'Tell me about a girl.' }],
        response_format: { type: 'json_schema', json_schema: { name: 'person', schema: person } },
        temperature: 1,
        seed: 3,
        max_tokens: 300,
      }),
      client.completions.create({
        model: MODEL,
        prompt: 'Once upon a time',
        max_tokens: 60,
        temperature: 1,
        seed: 4,
        structured_outputs: { regex: '[0-9]{3}-[a-z]{2,6}' },
      } as OpenAI.CompletionCreateParamsNonStreaming),
      ...expected.map((e) =>
        client.completions.create({
          model: MODEL,
          prompt: e.prompt,
          max_tokens: 80,
          temperature: 0,
          ignore_eos: true,
        } as OpenAI.CompletionCreateParamsNonStreaming),
      ),
    ]);
    expect(json.choices[0]!.finish_reason).toBe('stop');
    expect(validPerson(JSON.parse(json.choices[0]!.message.content!))).toBe(true);
    expect(regex.choices[0]!.text).toMatch(/^[0-9]{3}-[a-z]{2,6}$/);
    for (const [i, r] of free.entries()) sameText(r.choices[0]!.text, i);
  });

  it('logprobs follow the mask on the GPU: the allowed tokens hold all the probability', async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Hi' }],
      temperature: 0,
      max_tokens: 5,
      logprobs: true,
      top_logprobs: 5,
      structured_outputs: { choice: ['yes', 'no'] },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(['yes', 'no']).toContain(r.choices[0]!.message.content);
    const top = r.choices[0]!.logprobs!.content![0]!.top_logprobs.filter((t) => t.logprob > -9999);
    const mass = top.reduce((a, t) => a + Math.exp(t.logprob), 0);
    expect(mass).toBeCloseTo(1, 3);
  });

  it('a forced tool call is valid', async () => {
    const params = { type: 'object', properties: { city: { type: 'string', maxLength: 10 } }, required: ['city'] };
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Hi' }],
      tools: [{ type: 'function', function: { name: 'weather', parameters: params } }],
      tool_choice: { type: 'function', function: { name: 'weather' } },
      temperature: 0.8,
      seed: 2,
      max_tokens: 120,
    });
    expect(r.choices[0]!.finish_reason).toBe('tool_calls');
    const call = r.choices[0]!.message.tool_calls![0]!;
    if (call.type !== 'function') throw new Error('not a function call');
    expect(new Ajv({ strict: false }).compile(params)(JSON.parse(call.function.arguments))).toBe(true);
  });
});
