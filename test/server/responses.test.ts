// /v1/responses with the official openai client (responses.create, streamed and not, and the stream
// helper) against the real server and the real CPU engine with stories260K. The reference for the text is
// the same server's greedy /v1/completions of the same templated prompt (its token ids from /tokenize),
// itself checked against transformers in real-engine.test.ts.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorBody } from '../../src/server/errors.js';
import type { TokenizeResponse } from '../../src/server/schemas/tokenize.js';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { startStoriesServer } from './helpers/stories-server.js';
import { expected } from './helpers/stories.js';

let server: ServeHandle;
let client: OpenAI;
const MODEL = 'stories260K';

beforeAll(async () => {
  server = await startStoriesServer();
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => server?.close(1000));

const post = (path: string, body: unknown) =>
  fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

/** Greedy text of the chat-templated messages, through /tokenize and a token-id /v1/completions. */
async function greedyOf(
  messages: Array<{ role: string; content: string }>,
  maxTokens: number,
): Promise<{ text: string; finish: string; ids: number }> {
  const { tokens } = (await (await post('/tokenize', { messages })).json()) as TokenizeResponse;
  const r = await client.completions.create({ model: MODEL, prompt: tokens, max_tokens: maxTokens, temperature: 0 });
  return { text: r.choices[0]!.text, finish: r.choices[0]!.finish_reason, ids: tokens.length };
}

describe('/v1/responses', () => {
  it('a string input: output_text equals greedy generation of the templated prompt', async () => {
    const want = await greedyOf([{ role: 'user', content: expected[0]!.prompt }], 40);
    const r = await client.responses.create({
      model: MODEL,
      input: expected[0]!.prompt,
      max_output_tokens: 40,
      temperature: 0,
      store: false,
    });
    expect(r.object).toBe('response');
    expect(r.id).toMatch(/^resp_/);
    expect(r.output_text).toBe(want.text);
    expect(r.output).toHaveLength(1);
    expect(r.output[0]).toMatchObject({
      type: 'message',
      role: 'assistant',
      content: [{ type: 'output_text', text: want.text, annotations: [] }],
    });
    expect(r.status).toBe(want.finish === 'length' ? 'incomplete' : 'completed');
    if (r.status === 'incomplete') expect(r.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(r.usage).toMatchObject({ input_tokens: want.ids, total_tokens: want.ids + r.usage!.output_tokens });
    expect((r as unknown as { store: boolean }).store).toBe(false); // the response object echoes store
  });

  it('instructions and message items with input_text parts make the same prompt as chat messages', async () => {
    const instructions = 'Once upon a time, there was a cat.';
    const want = await greedyOf(
      [
        { role: 'system', content: instructions },
        { role: 'user', content: expected[2]!.prompt },
      ],
      30,
    );
    const r = await client.responses.create({
      model: MODEL,
      instructions,
      max_output_tokens: 30,
      temperature: 0,
      top_p: 1,
      input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: expected[2]!.prompt }] }],
    });
    expect(r.output_text).toBe(want.text);
    expect(r.instructions).toBe(instructions);
    expect(r.max_output_tokens).toBe(30);
  });

  it('streams the events OpenAI sends, numbered, with the same text', async () => {
    const want = await greedyOf([{ role: 'user', content: expected[1]!.prompt }], 40);
    const stream = await client.responses.create({
      model: MODEL,
      input: expected[1]!.prompt,
      max_output_tokens: 40,
      temperature: 0,
      stream: true,
    });
    const types: string[] = [];
    const seqs: number[] = [];
    let deltas = '';
    let final: OpenAI.Responses.Response | undefined;
    for await (const ev of stream) {
      types.push(ev.type);
      seqs.push(ev.sequence_number);
      if (ev.type === 'response.output_text.delta') deltas += ev.delta;
      if (ev.type === 'response.output_text.done') expect(ev.text).toBe(want.text);
      if (ev.type === 'response.completed' || ev.type === 'response.incomplete') final = ev.response;
    }
    expect(deltas).toBe(want.text);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    const end = want.finish === 'length' ? 'response.incomplete' : 'response.completed';
    const deltaCount = types.filter((t) => t === 'response.output_text.delta').length;
    expect(deltaCount).toBeGreaterThan(1);
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...new Array(deltaCount).fill('response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      end,
    ]);
    expect(final!.output[0]).toMatchObject({
      type: 'message',
      status: want.finish === 'length' ? 'incomplete' : 'completed',
    });
    expect(final!.usage!.output_tokens).toBeGreaterThan(0);
  });

  it("the client's stream helper assembles the final response", async () => {
    const want = await greedyOf([{ role: 'user', content: expected[3]!.prompt }], 20);
    const stream = client.responses.stream({
      model: MODEL,
      input: expected[3]!.prompt,
      max_output_tokens: 20,
      temperature: 0,
    });
    let deltas = '';
    stream.on('response.output_text.delta', (e) => (deltas += e.delta));
    const final = await stream.finalResponse();
    expect(final.output_text).toBe(want.text);
    expect(deltas).toBe(want.text);
  });

  it('logprobs with include message.output_text.logprobs: the same as chat gives for the same prompt', async () => {
    const input = expected[0]!.prompt;
    const chat = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: input }],
      max_tokens: 8,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    });
    const want = chat.choices[0]!.logprobs!.content!;
    const r = await client.responses.create({
      model: MODEL,
      input,
      max_output_tokens: 8,
      temperature: 0,
      include: ['message.output_text.logprobs'],
      top_logprobs: 3,
    });
    const part = (r.output[0] as OpenAI.Responses.ResponseOutputMessage)
      .content[0] as OpenAI.Responses.ResponseOutputText;
    expect(part.logprobs!.map((l) => l.token)).toEqual(want.map((l) => l.token));
    part.logprobs!.forEach((l, i) => {
      expect(l.logprob).toBeCloseTo(want[i]!.logprob, 5);
      expect(l.top_logprobs.map((t) => t.token)).toEqual(want[i]!.top_logprobs.map((t) => t.token));
    });
    const stream = await client.responses.create({
      model: MODEL,
      input,
      max_output_tokens: 8,
      temperature: 0,
      include: ['message.output_text.logprobs'],
      stream: true,
    });
    const streamed: string[] = [];
    for await (const ev of stream)
      if (ev.type === 'response.output_text.delta') streamed.push(...ev.logprobs.map((l) => l.token));
    expect(streamed).toEqual(want.map((l) => l.token));
  });

  it('refuses what kvserve does not do, by name', async () => {
    const refused = async (extra: Record<string, unknown>, param: string, message: RegExp) => {
      const res = await post('/v1/responses', { model: MODEL, input: 'Hi', ...extra });
      expect(res.status).toBe(400);
      const { error } = (await res.json()) as ErrorBody;
      expect(error.param).toBe(param);
      expect(error.message).toMatch(message);
    };
    await refused({ store: true }, 'store', /stores no responses/);
    await refused({ previous_response_id: 'resp_1' }, 'previous_response_id', /stores no responses/);
    await refused({ tools: [{ type: 'function', name: 'f' }] }, 'tools', /not supported/);
    await refused({ text: { format: { type: 'xml' } } }, 'text.format.type', /one of text, json_object, json_schema/);
    await refused(
      { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] },
      'input[0].content[0].type',
      /input_image/,
    );
    await refused(
      { input: [{ type: 'function_call_output', call_id: 'c', output: 'x' }] },
      'input[0].type',
      /function_call_output/,
    );
    await refused({ frobnicate: 1 }, 'frobnicate', /Unrecognized request argument supplied: frobnicate/);
    await refused({ include: ['reasoning.encrypted_content'] }, 'include', /reasoning.encrypted_content/);
    await expect(client.responses.create({ model: MODEL, input: 'Hi', store: true })).rejects.toMatchObject({
      status: 400,
    });
  });
});
