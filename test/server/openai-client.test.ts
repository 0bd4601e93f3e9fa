// The official `openai` client against the real server on a port. Text is checked against
// transformers' greedy output for stories260K (expected.json): the fake engine replays the reference
// token ids, so what is tested is everything the server does between tokens and the client.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, startTestServer, type TestServer } from './helpers/server.js';
import { expected } from './helpers/stories.js';

let server: TestServer;
let client: OpenAI;

beforeAll(async () => {
  server = await startTestServer();
  client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => server.close());

/** transformers decodes the continuation alone, which drops the first token's leading space. */
const ref = (i: number) => expected[i]!.greedy_text;
const sameText = (got: string, i: number) => expect(got.replace(/^ /, '')).toBe(ref(i));

describe('completions', () => {
  it('matches the reference for every prompt (not streamed)', async () => {
    for (let i = 0; i < expected.length; i++) {
      const r = await client.completions.create({
        model: MODEL,
        prompt: expected[i]!.prompt,
        max_tokens: 80,
        temperature: 0,
      });
      sameText(r.choices[0]!.text, i);
      expect(r.choices[0]!.finish_reason).toBe('length');
      expect(r.usage).toMatchObject({
        prompt_tokens: expected[i]!.prompt_ids.length,
        completion_tokens: 80,
        total_tokens: expected[i]!.prompt_ids.length + 80,
      });
    }
  });

  it('streams the same text, one id for every chunk, usage last', async () => {
    const stream = await client.completions.create({
      model: MODEL,
      prompt: expected[1]!.prompt,
      max_tokens: 80,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    const ids = new Set<string>();
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      ids.add(chunk.id);
      expect(chunk.object).toBe('text_completion');
      if (chunk.choices[0]) {
        text += chunk.choices[0].text;
        finish = chunk.choices[0].finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    sameText(text, 1);
    expect(ids.size).toBe(1);
    expect(finish).toBe('length');
    expect(usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 80, total_tokens: 85 });
  });

  it('takes token-id prompts and batches, n choices per prompt, prompt-major', async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: [expected[0]!.prompt_ids, expected[2]!.prompt_ids],
      n: 2,
      max_tokens: 80,
      temperature: 0,
    });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    sameText(r.choices[0]!.text, 0);
    sameText(r.choices[1]!.text, 0);
    sameText(r.choices[2]!.text, 2);
    sameText(r.choices[3]!.text, 2);
    // Prompt tokens count once per prompt, completion tokens once per choice.
    expect(r.usage!.prompt_tokens).toBe(expected[0]!.prompt_ids.length + expected[2]!.prompt_ids.length);
    expect(r.usage!.completion_tokens).toBe(320);
  });

  it('echoes the prompt', async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: expected[0]!.prompt,
      max_tokens: 80,
      temperature: 0,
      echo: true,
    });
    expect(r.choices[0]!.text).toBe(expected[0]!.prompt + ref(0));
  });

  it('returns legacy logprobs aligned with the text', async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: expected[0]!.prompt,
      max_tokens: 10,
      temperature: 0,
      logprobs: 2,
    });
    const lp = r.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(10);
    expect(lp.tokens!.join('')).toBe(r.choices[0]!.text);
    expect(lp.text_offset![0]).toBe(0);
    expect(lp.text_offset![1]).toBe(lp.tokens![0]!.length);
    expect(Object.keys(lp.top_logprobs![0]!).length).toBeGreaterThanOrEqual(2);
  });

  it("legacy logprobs have exactly OpenAI's four fields, streamed and not, with the same offsets", async () => {
    const fields = ['text_offset', 'token_logprobs', 'tokens', 'top_logprobs'];
    const body = { model: MODEL, prompt: expected[0]!.prompt, max_tokens: 10, temperature: 0, logprobs: 2 };
    const whole = (await client.completions.create(body)).choices[0]!.logprobs!;
    expect(Object.keys(whole).sort()).toEqual(fields);
    const offsets: number[] = [];
    for await (const chunk of await client.completions.create({ ...body, stream: true })) {
      const lp = chunk.choices[0]?.logprobs;
      if (!lp) continue;
      expect(Object.keys(lp).sort()).toEqual(fields);
      offsets.push(...lp.text_offset!);
    }
    expect(offsets).toEqual(whole.text_offset);
  });
});

describe('chat completions', () => {
  const messages = (i: number): OpenAI.ChatCompletionMessageParam[] => [{ role: 'user', content: expected[i]!.prompt }];

  it('matches the reference (not streamed), with usage', async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: messages(0),
      max_tokens: 80,
      temperature: 0,
    });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0]!.message.role).toBe('assistant');
    sameText(r.choices[0]!.message.content!, 0);
    expect(r.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 80, total_tokens: 85 });
  });

  it('streams the reference, the role alone in the first chunk', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: messages(3),
      max_completion_tokens: 80,
      temperature: 0,
      stream: true,
    });
    let text = '';
    let first = true;
    for await (const chunk of stream) {
      const c = chunk.choices[0]!;
      if (first) {
        expect(c.delta).toEqual({ role: 'assistant', content: '' });
        expect(c.logprobs).toBeNull();
        first = false;
      }
      text += c.delta.content ?? '';
    }
    sameText(text, 3);
  });

  it('runs n > 1 choices as separate engine requests', async () => {
    const before = server.engine.submitted.length;
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: messages(2),
      n: 3,
      max_tokens: 80,
      temperature: 0,
      seed: 7,
    });
    expect(r.choices).toHaveLength(3);
    for (const c of r.choices) sameText(c.message.content!, 2);
    const subs = server.engine.submitted.slice(before);
    expect(subs).toHaveLength(3);
    expect(new Set(subs.map((s) => s.id)).size).toBe(3);
    expect(subs.map((s) => s.sampling.seed)).toEqual([7, 8, 9]);
  });

  it('n > 1 streams interleave, each choice with its own role and finish', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: messages(0),
      n: 2,
      max_tokens: 80,
      temperature: 0,
      stream: true,
    });
    const texts = ['', ''];
    const roles = [0, 0];
    const finishes: Array<string | null> = [null, null];
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        texts[c.index] += c.delta.content ?? '';
        if (c.delta.role) roles[c.index]!++;
        if (c.finish_reason) finishes[c.index] = c.finish_reason;
      }
    }
    for (const t of texts) sameText(t, 0);
    expect(roles).toEqual([1, 1]);
    expect(finishes).toEqual(['length', 'length']);
  });

  it('stops at a stop string, not returned, also when streamed', async () => {
    // Reference: ", there was a little girl named Lily. She loved…" — cut before the first " Lily".
    const want = ref(0).slice(0, ref(0).indexOf(' Lily'));
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: messages(0),
      max_tokens: 80,
      temperature: 0,
      stop: [' Lily', 'zzz'],
    });
    expect(r.choices[0]!.message.content).toBe(want);
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: messages(0),
      max_tokens: 80,
      temperature: 0,
      stop: 'ly. She',
      stream: true,
    });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(ref(0).slice(0, ref(0).indexOf('ly. She')));
    expect(finish).toBe('stop');
  });

  it('returns logprobs with top_logprobs whose tokens spell the text', async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: messages(0),
      max_tokens: 12,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    });
    const content = r.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(12);
    expect(content.map((c) => c.token).join('')).toBe(r.choices[0]!.message.content);
    for (const c of content) {
      expect(c.top_logprobs).toHaveLength(3);
      expect(c.bytes).toEqual([...Buffer.from(c.token)]);
      expect(c.logprob).toBeLessThanOrEqual(0);
    }
  });

  it('lists the model', async () => {
    const models = await client.models.list();
    expect(models.data).toHaveLength(1);
    expect(models.data[0]).toMatchObject({ id: MODEL, object: 'model', owned_by: 'kvserve', max_model_len: 512 });
    expect(typeof models.data[0]!.created).toBe('number');
  });
});
