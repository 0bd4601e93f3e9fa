// Several models in one real server, through the admin API, each checked against its own reference computed by
// transformers: stories260K (models/stories260K/expected.json) and the qwen2-bias fixture
// (test/fixtures/qwen2-bias/expected.json). In order, on one server:
//   1. a second model loads while the first one streams, and then both serve their own references, each with
//      its own limits;
//   2. the first model is switched to a copy of itself under steady load, with no request failing: new requests
//      go to the new engine once it is up, the old engine finishes what it holds and is freed;
//   3. the second model is unloaded: 404 for its name, its engine freed, its series gone from /metrics.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { expectEnvelope } from './helpers/envelope.js';
import {
  admin,
  adminModels,
  qwenDir,
  serverConfig,
  startNamed,
  storiesCopy,
  until,
  untilModels,
  hold,
  prefills,
  type WatchedEngine,
  watchedNative,
} from './helpers/models-server.js';
import { expected } from './helpers/stories.js';

interface FixtureReference {
  prompts: number[][];
  steps: number;
  references: { exact: { greedy_ids: number[][] } };
}
const qwen: FixtureReference = JSON.parse(readFileSync(join(qwenDir, 'expected.json'), 'utf8'));

const watched = watchedNative();
let server: ServeHandle;
let client: OpenAI;
const copy = storiesCopy();

beforeAll(async () => {
  server = await startNamed('a', serverConfig({ maxNumSeqs: 16 }), watched.native);
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => server?.close(1000));

/** transformers decodes the continuation alone, which drops the first token's leading space. */
const storiesText = (text: string) => text.replace(/^ /, '');

/** stories260K greedy: the reference text of prompt i, from model `model` (streamed or not). */
async function stories(model: string, i: number, stream: boolean): Promise<string> {
  const e = expected[i]!;
  const body = { model, prompt: e.prompt, max_tokens: 80, temperature: 0, ignore_eos: true };
  if (!stream) {
    const r = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
    return storiesText(r.choices[0]!.text);
  }
  let text = '';
  const s = await client.completions.create({ ...body, stream: true } as OpenAI.CompletionCreateParamsStreaming);
  for await (const chunk of s) text += chunk.choices[0]?.text ?? '';
  return storiesText(text);
}

/** qwen2-bias greedy ids of fixture prompt i, as token ids (return_tokens_as_token_ids). */
async function qwenIds(i: number): Promise<number[]> {
  const r = await client.completions.create({
    model: 'b',
    prompt: qwen.prompts[i]!,
    max_tokens: qwen.steps,
    temperature: 0,
    ignore_eos: true,
    logprobs: 0,
    return_tokens_as_token_ids: true,
  } as OpenAI.CompletionCreateParamsNonStreaming);
  return r.choices[0]!.logprobs!.tokens!.map((t) => Number(t.replace('token_id:', '')));
}

const engineOf = (dir: string): WatchedEngine[] => watched.engines.filter((e) => e.opts.model === dir);

/** A greedy completion stream, open with its first chunk read; `rest()` reads it to the end. */
async function openStream(body: Record<string, unknown>) {
  const stream = await client.completions.create({
    ...body,
    temperature: 0,
    stream: true,
  } as OpenAI.CompletionCreateParamsStreaming);
  const it = stream[Symbol.asyncIterator]();
  let text = '';
  const tokens: string[] = [];
  const take = (chunk: OpenAI.Completion) => {
    text += chunk.choices[0]?.text ?? '';
    tokens.push(...(chunk.choices[0]?.logprobs?.tokens ?? []));
  };
  const first = await it.next();
  if (!first.done) take(first.value);
  return {
    async rest(): Promise<string> {
      for (let r = await it.next(); !r.done; r = await it.next()) take(r.value);
      return text;
    },
    tokenIds: () => tokens.map((t) => Number(t.replace('token_id:', ''))),
  };
}

describe('several models in one server', () => {
  it('loads a second model while the first streams; both then serve their own references and limits', async () => {
    const e = expected[0]!;
    const stream = await client.completions.create({
      model: 'a',
      prompt: e.prompt,
      max_tokens: 80,
      temperature: 0,
      ignore_eos: true,
      stream: true,
    } as OpenAI.CompletionCreateParamsStreaming);
    let text = '';
    let posted: Awaited<ReturnType<typeof admin>> | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      // Mid-stream: the first chunk is in, the rest is still to come.
      posted ??= await admin(server.url, 'POST', '/admin/models', {
        name: 'b',
        model: qwenDir,
        device: 'cpu',
        threads: 1,
        max_num_seqs: 4,
        max_queue: 8,
      });
    }
    expect(storiesText(text)).toBe(e.greedy_text);
    expect(posted!.status, posted!.text).toBe(202);
    // A model added later never takes the pod out of service: /health stays 200 while it loads.
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect(posted!.json).toMatchObject({ name: 'b', state: 'loading', loading: { source: qwenDir, kind: 'load' } });

    const models = await untilModels(server.url, (m) => m.find((x) => x.name === 'b')?.state === 'ready');
    expect(models.map((m) => [m.name, m.state, m.source])).toEqual([
      ['a', 'ready', serverConfig().model],
      ['b', 'ready', qwenDir],
    ]);
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['a', 'b']);
    expect(await (await fetch(`${server.url}/health`)).json()).toEqual({
      status: 'ok',
      models: { a: { state: 'ready' }, b: { state: 'ready' } },
    });

    // Both at once, each against its own reference.
    const [aTexts, bIds] = await Promise.all([
      Promise.all(expected.map((_, i) => stories('a', i, i % 2 === 0))),
      Promise.all(qwen.prompts.map((_, i) => qwenIds(i))),
    ]);
    for (const [i, t] of aTexts.entries()) expect(t, `a, prompt ${i}`).toBe(expected[i]!.greedy_text);
    for (const [i, ids] of bIds.entries()) expect(ids, `b, prompt ${i}`).toEqual(qwen.references.exact.greedy_ids[i]);

    // Each its own limits: b takes at most 4 sequences a request, a its 16.
    const tooMany = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'b', prompt: [1, 2, 3], n: 5, max_tokens: 1 }),
    });
    expect(expectEnvelope(tooMany.status, await tooMany.text(), 'invalid_value').message).toMatch(/--max-num-seqs 4/);
    const five = await client.completions.create({ model: 'a', prompt: 'x', n: 5, max_tokens: 1 });
    expect(five.choices).toHaveLength(5);
    // A name not served is OpenAI's 404.
    const unknown = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'c', prompt: 'x' }),
    });
    expect(expectEnvelope(unknown.status, await unknown.text(), 'model_not_found').param).toBe('model');
  });

  it('switches a to a new copy under steady load with no failed request', async () => {
    const [old] = engineOf(serverConfig().model);
    expect(old).toBeDefined();
    const failures: string[] = [];
    let done = 0;
    let stop = false;
    // Three clients, each sending the next request as soon as one ends: at most 300 each, at most 60 s.
    const deadline = Date.now() + 60_000;
    const clientLoop = async (c: number) => {
      for (let k = 0; k < 300 && !stop && Date.now() < deadline; k++) {
        const i = [0, 1, 3][(c + k) % 3]!; // prompt 2 is the held stream's own
        try {
          const got = await stories('a', i, (c + k) % 2 === 0);
          if (got !== expected[i]!.greedy_text) failures.push(`client ${c} request ${k}: wrong text ${got}`);
        } catch (err) {
          failures.push(`client ${c} request ${k}: ${String(err)}`);
        }
        done++;
      }
    };
    const loops = [0, 1, 2].map(clientLoop);
    await until(() => done >= 6, 'requests before the switch');
    // A stream that began on the old engine holds it: it finishes there, and the engine is freed after it. The
    // old engine's steps are held from the one after this stream's prefill until the new engine serves, so that
    // it (and the clients' requests then running) are surely still in flight at the switch.
    const release = hold(old!, prefills(expected[2]!.prompt_ids));
    const held = await openStream({ model: 'a', prompt: expected[2]!.prompt, max_tokens: 80, ignore_eos: true });

    expect(old!.holding).toBe(true);
    const put = await admin(server.url, 'PUT', '/admin/models/a', { model: copy, device: 'cpu', threads: 1 });
    expect(put.status, put.text).toBe(202);
    expect(put.json).toMatchObject({ name: 'a', state: 'ready', loading: { source: copy, kind: 'switch' } });
    await untilModels(server.url, (m) => m[0]!.source === copy && m[0]!.draining_instances === 1);
    expect(old!.disposed).toBe(false);
    release();
    expect(storiesText(await held.rest())).toBe(expected[2]!.greedy_text);
    await untilModels(server.url, (m) => m[0]!.draining_instances === 0);
    await until(() => old!.disposed, 'the old engine freed');
    const atSwitch = done;
    await until(() => done >= atSwitch + 9, 'requests after the switch');
    stop = true;
    await Promise.all(loops);

    expect(failures).toEqual([]);
    const [fresh] = engineOf(copy);
    expect(fresh!.steps).toBeGreaterThan(0); // requests after the switch ran on the new engine
    expect(fresh!.disposed).toBe(false);
    expect(() => old!.native.info()).toThrow(/disposed/);
    const [a] = await adminModels(server.url);
    expect(a).toMatchObject({ state: 'ready', error: null, in_flight: 0 });
  });

  it('unloads b after its requests finish: 404 for its name afterwards, its engine freed, its series gone', async () => {
    const [b] = engineOf(qwenDir);
    expect(b!.disposed).toBe(false);
    expect(await (await fetch(`${server.url}/metrics`)).text()).toMatch(/vllm:num_requests_running\{model_name="b"\}/);
    const release = hold(b!, prefills(qwen.prompts[3]!)); // its stream stays in flight after its first token
    const held = await openStream({
      model: 'b',
      prompt: qwen.prompts[3],
      max_tokens: qwen.steps,
      ignore_eos: true,
      logprobs: 0,
      return_tokens_as_token_ids: true,
    });
    expect(b!.holding).toBe(true); // its prefill ran: the stream is in flight, its next steps wait
    const del = await admin(server.url, 'DELETE', '/admin/models/b');
    expect(del.status, del.text).toBe(202);
    expect(del.json).toMatchObject({ name: 'b', state: 'draining' });
    // The name is gone at once; the stream in flight finishes on its engine, which is freed after.
    const gone = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'b', prompt: [1, 2], max_tokens: 1 }),
    });
    expectEnvelope(gone.status, await gone.text(), 'model_not_found');
    expect((await adminModels(server.url)).find((m) => m.name === 'b')).toMatchObject({ state: 'draining' });
    expect(b!.disposed).toBe(false);
    release();
    await held.rest();
    expect(held.tokenIds()).toEqual(qwen.references.exact.greedy_ids[3]);
    await untilModels(server.url, (m) => m.every((x) => x.name !== 'b'));

    expect(b!.disposed).toBe(true);
    expect(() => b!.native.info()).toThrow(/disposed/);
    const r = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'b', prompt: [1, 2], max_tokens: 1 }),
    });
    expectEnvelope(r.status, await r.text(), 'model_not_found');
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['a']);
    expect(await (await fetch(`${server.url}/metrics`)).text()).not.toMatch(/model_name="b"/);
    // a serves on.
    expect(await stories('a', 1, true)).toBe(expected[1]!.greedy_text);
  });
});
