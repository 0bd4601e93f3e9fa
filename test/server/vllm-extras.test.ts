// vLLM's request extras and the OpenAI deviations fixed in issue 13, against the real server and the real
// CPU engine with stories260K, through the official openai client. References: transformers' greedy ids
// (expected.json) and, for the masks, the unmasked run's own top alternatives.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { expected } from './helpers/stories.js';
import { startStoriesServer } from './helpers/stories-server.js';

let server: ServeHandle;
let client: OpenAI;
const MODEL = 'stories260K';
const ref = expected[0]!; // "Once upon a time" → ", there was a little girl named Lily. She loved…"

beforeAll(async () => {
  server = await startStoriesServer();
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => server?.close(1000));

type Extra = Record<string, unknown>;
const complete = (params: Extra) =>
  client.completions.create({
    model: MODEL,
    prompt: ref.prompt,
    temperature: 0,
    ...params,
  } as unknown as OpenAI.CompletionCreateParamsNonStreaming);

/** The generated ids, read back through return_tokens_as_token_ids. */
async function greedyIds(params: Extra): Promise<number[]> {
  const r = await complete({ logprobs: 0, return_tokens_as_token_ids: true, ignore_eos: true, ...params });
  return r.choices[0]!.logprobs!.tokens!.map((t) => Number(/^token_id:(\d+)$/.exec(t)![1]));
}

describe("vLLM's extras", () => {
  it("return_tokens_as_token_ids names tokens by id: the greedy ids are transformers'", async () => {
    expect(await greedyIds({ max_tokens: 30 })).toEqual(ref.greedy_ids.slice(0, 30));
  });

  it('allowed_token_ids: only those are sampled, the rest read the -9999 floor', async () => {
    const allowed = [ref.greedy_ids[5]!, ref.greedy_ids[9]!, 13];
    const r = await complete({
      max_tokens: 12,
      allowed_token_ids: allowed,
      logprobs: 5,
      return_tokens_as_token_ids: true,
      ignore_eos: true,
    });
    const lp = r.choices[0]!.logprobs!;
    for (const t of lp.tokens!) expect(allowed).toContain(Number(t.slice('token_id:'.length)));
    for (const top of lp.top_logprobs!) {
      for (const [t, v] of Object.entries(top)) {
        if (!allowed.includes(Number(t.slice('token_id:'.length)))) expect(v).toBe(-9999);
      }
      // The allowed tokens hold all the probability mass.
      const mass = allowed.reduce((a, id) => a + Math.exp(top[`token_id:${id}`] ?? -Infinity), 0);
      expect(mass).toBeCloseTo(1, 4);
    }
  });

  it("bad_words of one token: never generated; the run follows the unmasked run's best alternative", async () => {
    const free = await complete({ max_tokens: 2, logprobs: 2, return_tokens_as_token_ids: true });
    const alternatives = Object.keys(free.choices[0]!.logprobs!.top_logprobs![1]!).map((t) =>
      Number(t.slice('token_id:'.length)),
    );
    const ids = await greedyIds({ max_tokens: 20, bad_words: ['there'] });
    expect(ids[0]).toBe(ref.greedy_ids[0]);
    expect(ids).not.toContain(ref.greedy_ids[1]); // ▁there
    expect(ids[1]).toBe(alternatives.find((id) => id !== ref.greedy_ids[1]));
  });

  it("bad_words of several tokens ban the last one only right after the others (vLLM's semantics)", async () => {
    // "girl" is ▁g ir l here: ▁g and ir are still generated, then l is masked.
    const at = ref.greedy_ids.indexOf(ref.greedy_ids[7]!); // l, after ▁little ▁g ir
    const ids = await greedyIds({ max_tokens: 12, bad_words: ['girl'] });
    expect(ids.slice(0, at)).toEqual(ref.greedy_ids.slice(0, at));
    expect(ids[at]).not.toBe(ref.greedy_ids[at]);
    const text = (await complete({ max_tokens: 40, bad_words: ['girl'] })).choices[0]!.text;
    expect(text).not.toContain('girl');
    expect(ref.greedy_text).toContain('girl');
  });

  it('truncate_prompt_tokens keeps the end of the prompt', async () => {
    const junk = [300, 301, 302, 303, 304, 305];
    const r = await client.completions.create({
      model: MODEL,
      prompt: [...junk, ...ref.prompt_ids],
      max_tokens: 20,
      temperature: 0,
      truncate_prompt_tokens: ref.prompt_ids.length,
      logprobs: 0,
      return_tokens_as_token_ids: true,
    } as unknown as OpenAI.CompletionCreateParamsNonStreaming);
    expect(r.usage!.prompt_tokens).toBe(ref.prompt_ids.length);
    expect(r.choices[0]!.logprobs!.tokens).toEqual(ref.greedy_ids.slice(0, 20).map((id) => `token_id:${id}`));
  });

  it('add_special_tokens: false leaves out the BOS of a string prompt; truncation past the context is a 400', async () => {
    const r = await complete({ max_tokens: 1, add_special_tokens: false });
    expect(r.usage!.prompt_tokens).toBe(ref.prompt_ids.length - 1);
    await expect(complete({ max_tokens: 1, truncate_prompt_tokens: 513 })).rejects.toMatchObject({
      status: 400,
      param: 'truncate_prompt_tokens',
    });
  });

  it('stream_options.continuous_usage_stats: every chunk carries the usage so far', async () => {
    const stream = await client.completions.create({
      model: MODEL,
      prompt: ref.prompt,
      max_tokens: 10,
      temperature: 0,
      stream: true,
      ignore_eos: true,
      stream_options: { include_usage: true, continuous_usage_stats: true },
    } as unknown as OpenAI.CompletionCreateParamsStreaming);
    const seen: number[] = [];
    for await (const chunk of stream) {
      expect(chunk.usage).toBeTruthy();
      expect(chunk.usage!.prompt_tokens).toBe(ref.prompt_ids.length);
      seen.push(chunk.usage!.completion_tokens);
    }
    expect(seen.at(-1)).toBe(10);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen[0]).toBeLessThan(10);
  });

  it('request_id becomes the completion id', async () => {
    const r = await complete({ max_tokens: 2, request_id: 'trace-42' });
    expect(r.id).toBe('cmpl-trace-42');
  });
});

describe('deviations from OpenAI, fixed', () => {
  it('the chat stream helper with logprobs counts each token once (the role chunk carries none)', async () => {
    const stream = client.chat.completions.stream({
      model: MODEL,
      messages: [{ role: 'user', content: ref.prompt }],
      max_tokens: 15,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      stream_options: { include_usage: true },
      ignore_eos: true,
    } as Parameters<typeof client.chat.completions.stream>[0]);
    const final = await stream.finalChatCompletion();
    const content = final.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(15);
    expect(final.usage!.completion_tokens).toBe(15);
    expect(content.map((c) => c.token).join('')).toBe(final.choices[0]!.message.content);
  });

  it('/v1/completions defaults max_tokens to 16, chat to the rest of the context', async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: ref.prompt,
      temperature: 0,
      ignore_eos: true,
    } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(r.usage!.completion_tokens).toBe(16);
    const c = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: ref.prompt }],
      temperature: 0,
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(c.usage!.completion_tokens).toBe(512 - c.usage!.prompt_tokens);
  });

  it('a byte-fallback token: chat keeps U+FFFD with its byte, the legacy form shows bytes:\\xNN', async () => {
    const byteId = 229; // <0xE2> in stories260K's vocabulary
    const forced = { max_tokens: 1, logit_bias: { [byteId]: 100 }, temperature: 0 };
    const legacy = await complete({ ...forced, logprobs: 1 });
    expect(legacy.choices[0]!.logprobs!.tokens).toEqual(['bytes:\\xe2']);
    const chat = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: ref.prompt }],
      logprobs: true,
      ...forced,
    });
    expect(chat.choices[0]!.logprobs!.content![0]).toMatchObject({ token: '\uFFFD', bytes: [0xe2] });
  });

  it('logprobs are reported after logit_bias: removing the top token renormalises the rest', async () => {
    const top = ref.greedy_ids[0]!; // ","
    const free = (await complete({ max_tokens: 1, logprobs: 5, return_tokens_as_token_ids: true })).choices[0]!
      .logprobs!.top_logprobs![0]!;
    const biased = (
      await complete({ max_tokens: 1, logprobs: 5, return_tokens_as_token_ids: true, logit_bias: { [top]: -100 } })
    ).choices[0]!.logprobs!;
    expect(Object.keys(biased.top_logprobs![0]!)).not.toContain(`token_id:${top}`);
    // With the top token's mass p gone, every other logprob rises by -log(1 - p).
    const shift = -Math.log(1 - Math.exp(free[`token_id:${top}`]!));
    for (const [t, v] of Object.entries(biased.top_logprobs![0]!)) {
      if (free[t] !== undefined) expect(v).toBeCloseTo(free[t]! + shift, 3);
    }
    expect(biased.token_logprobs![0]).toBeCloseTo(free[biased.tokens![0]!]! + shift, 3);
  });
});
