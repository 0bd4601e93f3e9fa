// The real server (startServe: listen first, then load the native CPU engine) with stories260K and the
// official openai client. Greedy text must equal transformers' (expected.json), streamed and not.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { metricValue, readThenDisconnect, until } from './helpers/disconnect.js';
import { expected } from './helpers/stories.js';
import { startStoriesServer } from './helpers/stories-server.js';

let server: ServeHandle;
let client: OpenAI;
const MODEL = 'stories260K';

beforeAll(async () => {
  server = await startStoriesServer();
  // Listening before the model is there: /health says 503 until the engine is up.
  const early = await fetch(`${server.url}/health`);
  expect([200, 503]).toContain(early.status);
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => server?.close(1000));

/** transformers decodes the continuation alone, which drops the first token's leading space. */
const sameText = (got: string, i: number) => expect(got.replace(/^ /, '')).toBe(expected[i]!.greedy_text);

const metric = (name: string) => metricValue(server.url, name);

describe('real CPU engine, stories260K', () => {
  it('serves /health 200 and the model with its context', async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    const models = await client.models.list();
    expect(models.data[0]).toMatchObject({ id: MODEL, max_model_len: 512 });
  });

  it('completions at temperature 0 equal the reference, all prompts concurrently', async () => {
    const results = await Promise.all(
      expected.map((e) =>
        client.completions.create({
          model: MODEL,
          prompt: e.prompt,
          max_tokens: 80,
          temperature: 0,
          ignore_eos: true,
        } as OpenAI.CompletionCreateParamsNonStreaming),
      ),
    );
    for (const [i, r] of results.entries()) sameText(r.choices[0]!.text, i);
    expect(results[0]!.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 80 });
  });

  it('chat streamed equals the reference, with usage', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: expected[2]!.prompt }],
      max_tokens: 80,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    sameText(text, 2);
    expect(usage).toMatchObject({ prompt_tokens: expected[2]!.prompt_ids.length, completion_tokens: 80 });
  });

  it('n > 1 greedy choices agree and share the prompt through the prefix cache', async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: expected[3]!.prompt }],
      n: 3,
      max_tokens: 80,
      temperature: 0,
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(r.choices).toHaveLength(3);
    for (const c of r.choices) sameText(c.message.content!, 3);
    expect(await metric('vllm:prefix_cache_queries_total')).toBeGreaterThan(0);
  });

  it('vllm:iteration_tokens_total counts the tokens of every engine step, kvserve_engine_step_seconds its time and kvserve_engine_native_step_seconds its native part', async () => {
    // Ids no other test sends, so nothing comes from the prefix cache: one prefill step of the whole prompt,
    // then one token per decode step.
    const prompt = [1, 411, 412, 413, 414, 415, 416, 417, 418, 419, 420];
    const count = () => metric('vllm:iteration_tokens_total_count');
    const sum = () => metric('vllm:iteration_tokens_total_sum');
    const names = [
      'kvserve_engine_step_seconds_count',
      'kvserve_engine_step_seconds_sum',
      'vllm:e2e_request_latency_seconds_sum',
      'kvserve_engine_native_step_seconds_count',
      'kvserve_engine_native_step_seconds_sum',
    ];
    const [c0, s0] = [await count(), await sum()];
    const t0 = await Promise.all(names.map(metric));
    await client.completions.create({
      model: MODEL,
      prompt,
      max_tokens: 7,
      temperature: 0,
      ignore_eos: true,
    } as OpenAI.CompletionCreateParamsNonStreaming);
    expect((await count()) - c0).toBe(7); // the prefill step samples the first token
    expect((await sum()) - s0).toBe(prompt.length + 6);
    const [steps, stepSeconds, e2eSeconds, nativeSteps, nativeSeconds] = (await Promise.all(names.map(metric))).map(
      (v, i) => v - t0[i]!,
    );
    expect(steps).toBe(7);
    // Every step ran between the request's arrival and its last token, its native part within it.
    expect(stepSeconds).toBeGreaterThan(0);
    expect(stepSeconds).toBeLessThan(e2eSeconds!);
    expect(nativeSteps).toBe(7);
    expect(nativeSeconds).toBeGreaterThan(0);
    expect(nativeSeconds).toBeLessThan(stepSeconds!);
  });

  it('stop strings and logprobs with real numbers', async () => {
    const ref = expected[0]!.greedy_text;
    const r = await client.completions.create({
      model: MODEL,
      prompt: expected[0]!.prompt,
      max_tokens: 80,
      temperature: 0,
      stop: ['park'],
      logprobs: 3,
    });
    expect(r.choices[0]!.text).toBe(ref.slice(0, ref.indexOf('park')));
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const lp = r.choices[0]!.logprobs!;
    // The greedy token is the most likely one: its logprob is the largest of the alternatives.
    for (const [i, v] of lp.token_logprobs!.entries())
      expect(v).toBeCloseTo(Math.max(...Object.values(lp.top_logprobs![i]!)), 5);
  });

  it('a client that disconnects mid-stream leaves nothing running and no KV in use', async () => {
    const controller = new AbortController();
    const stream = await client.completions.create(
      {
        model: MODEL,
        prompt: expected[1]!.prompt,
        max_tokens: 400,
        temperature: 0.8,
        n: 4,
        stream: true,
        ignore_eos: true,
      } as OpenAI.CompletionCreateParamsStreaming,
      { signal: controller.signal },
    );
    await readThenDisconnect(stream, controller, 8, async () => {
      expect(await metric('vllm:num_requests_running')).toBeGreaterThan(0);
      expect(await metric('vllm:kv_cache_usage_perc')).toBeGreaterThan(0);
    });
    await until(async () => (await metric('vllm:num_requests_running')) === 0);
    expect(await metric('vllm:num_requests_running')).toBe(0);
    expect(await metric('vllm:kv_cache_usage_perc')).toBe(0);
    expect(await metric('vllm:generation_tokens_total')).toBeLessThan(4 * 400);
  });
});

describe('graceful close', () => {
  it('a stream in flight at close ends with an error event and [DONE], never "abort", and close resolves', async () => {
    const s = await startStoriesServer();
    await s.ready;
    const res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        prompt: expected[0]!.prompt,
        max_tokens: 500,
        temperature: 0,
        ignore_eos: true,
        stream: true,
      }),
    });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toMatch(/^data: /);
    // No grace: the live request is cut at once; its client is told so.
    const closed = s.close(0);
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    await closed;
    expect(rest.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(rest).not.toContain('"abort"');
    expect(rest).toMatch(/"code":"server_shutting_down"|"finish_reason":"length"/);
    await expect(fetch(`${s.url}/health`)).rejects.toThrow();
  });
});
