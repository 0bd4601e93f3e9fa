// `kvserve serve --device cuda` end to end on the GPU: the real server (startServe) with the CUDA engine and
// stories260K, through the official openai client, streamed and not: greedy text equals transformers'
// (expected.json), alone and with every prompt in flight at once.
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
});
