// Large prompts never freeze the event loop: a prompt that cannot fit the context is refused by its size
// before any tokenizing, and what is tokenized (prompts, chat templates) is tokenized on worker threads,
// so /health keeps answering while the largest admissible prompts are processed. The 50 ms bound is a
// correctness bound (a frozen loop answers in hundreds of ms or seconds), not a benchmark.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedModel } from '../../src/server/model-slot.js';
import { expectEnvelope } from './helpers/envelope.js';
import { startTestServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let model: LoadedModel;
beforeAll(async () => {
  server = await startTestServer();
  model = server.ctx.slot.loaded!;
});
afterAll(() => server.close());

// stories260K's derived bound (4.6 KB) tokenizes in ~15 ms; a larger --max-prompt-bytes, as a model with a
// long context would derive, admits prompts that take this tokenizer about 200 ms each.
const LARGE = 24 * 1024;

const STORY = 'Once upon a time there was a little girl named Lily. She liked to play in the park with her friend. ';
const textOf = (bytes: number) => STORY.repeat(Math.ceil(bytes / STORY.length)).slice(0, bytes);

async function post(path: string, body: object) {
  const res = await fetch(server.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.text() };
}

/** Polls /health every ~20 ms while `sends` start one by one and run; returns each answer's latency. */
async function healthWhile(
  url: string,
  sends: Array<() => Promise<unknown>>,
): Promise<{ latencies: number[]; busyMs: number }> {
  const queue = [...sends];
  const work: Array<Promise<unknown>> = [];
  let pending = 0;
  const latencies: number[] = [];
  const started = performance.now();
  do {
    const send = queue.shift();
    if (send) {
      pending++;
      work.push(send().finally(() => pending--));
    }
    const t0 = performance.now();
    const r = await fetch(`${url}/health`);
    await r.text();
    latencies.push(performance.now() - t0);
    expect(r.status).toBe(200);
    await new Promise((r) => setTimeout(r, 20));
  } while (pending > 0 || queue.length > 0);
  await Promise.all(work);
  return { latencies, busyMs: performance.now() - started };
}

describe('the event loop stays free', () => {
  it('/health answers within 50 ms each while maximal prompts and chats are tokenized', async () => {
    const big = await startTestServer({ maxPromptBytes: LARGE });
    try {
      const bigModel = big.ctx.slot.loaded!;
      const answers: Array<{ status: number; body: string }> = [];
      const call = (path: string, body: object) => async () => {
        const res = await fetch(big.url + path, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        answers.push({ status: res.status, body: await res.text() });
      };
      const prompt = textOf(LARGE);
      const chat = [
        { role: 'system', content: textOf(LARGE / 2 - 64) },
        { role: 'user', content: textOf(LARGE / 2 - 64) },
      ];
      const sends = [
        call('/v1/completions', { prompt, max_tokens: 1 }),
        call('/v1/chat/completions', { messages: chat, max_tokens: 1 }),
        call('/v1/completions', { prompt: [STORY, prompt], max_tokens: 1 }),
        call('/tokenize', { prompt }),
      ];
      // Warm: the first request down each path compiles its code; that one-off cost is not what is measured.
      await Promise.all([
        call('/v1/completions', { prompt: STORY, max_tokens: 1 })(),
        call('/v1/chat/completions', { messages: [{ role: 'user', content: STORY }], max_tokens: 1 })(),
        call('/tokenize', { prompt: STORY })(),
      ]);
      // A loaded 2-core machine stalls an idle server's /health now and then by itself (about one answer in a
      // few hundred): the best of four rounds is taken. A loop that tokenizes stalls in every round.
      let best: { latencies: number[]; busyMs: number } | undefined;
      for (let round = 0; round < 4 && !(best && Math.max(...best.latencies) < 50); round++) {
        answers.length = 0;
        const jobsBefore = bigModel.prompts.jobs;
        const r = await healthWhile(big.url, sends);
        // Tokenized (not refused by size): simply longer than the 512-token context.
        expect(answers.map((a) => a.status).sort()).toEqual([200, 400, 400, 400]);
        expect(bigModel.prompts.jobs - jobsBefore).toBe(5);
        // The work lasted long enough that a frozen loop would show: a tokenizer on the loop stalls /health
        // for as long as it runs.
        expect(r.busyMs).toBeGreaterThan(150);
        expect(r.latencies.length).toBeGreaterThanOrEqual(3);
        if (!best || Math.max(...r.latencies) < Math.max(...best.latencies)) best = r;
      }
      expect(Math.max(...best!.latencies)).toBeLessThan(50);
    } finally {
      await big.close();
    }
  });
});

describe('what cannot fit is refused before tokenizing', () => {
  it('a prompt longer than --max-prompt-bytes, in bytes not characters, is a 400 naming the field', async () => {
    const max = model.maxPromptBytes;
    const before = model.prompts.jobs;
    const cases: Array<[string, object, string]> = [
      ['/v1/completions', { prompt: textOf(max + 1) }, 'prompt'],
      ['/v1/completions', { prompt: 'x'.repeat(1 << 20) }, 'prompt'],
      ['/v1/completions', { prompt: ['Once', textOf(max + 1)] }, 'prompt[1]'],
      ['/v1/completions', { prompt: 'é'.repeat(Math.floor(max / 2) + 1) }, 'prompt'], // fewer characters than max, more bytes
      ['/tokenize', { prompt: textOf(max + 1) }, 'prompt'],
    ];
    for (const [path, body, param] of cases) {
      const r = await post(path, body);
      const e = expectEnvelope(r.status, r.body, 'context_length_exceeded');
      expect(e.param).toBe(param);
      expect(e.message).toMatch(/bytes/);
    }
    expect(model.prompts.jobs).toBe(before);
  });

  it('more messages than the context has tokens, or more message text than fits, is refused before rendering', async () => {
    const before = model.prompts.jobs;
    const many = Array.from({ length: model.maxModelLen + 1 }, () => ({ role: 'user', content: 'hi' }));
    const r1 = await post('/v1/chat/completions', { messages: many });
    expect(expectEnvelope(r1.status, r1.body, 'context_length_exceeded').param).toBe('messages');
    const big = Array.from({ length: 3 }, () => ({
      role: 'user',
      content: textOf(Math.ceil(model.maxPromptBytes / 3) + 1),
    }));
    const r2 = await post('/v1/chat/completions', { messages: big });
    expect(expectEnvelope(r2.status, r2.body, 'context_length_exceeded').param).toBe('messages');
    const r3 = await post('/tokenize', { messages: many });
    expect(expectEnvelope(r3.status, r3.body, 'context_length_exceeded').param).toBe('messages');
    expect(model.prompts.jobs).toBe(before);
  });

  it('a token-id prompt longer than the context is refused before it is decoded for echo', async () => {
    const r = await post('/v1/completions', { prompt: Array.from({ length: 200_000 }, () => 5), echo: true });
    expectEnvelope(r.status, r.body, 'context_length_exceeded');
  });

  it('prompts that fit still serve, tokenized off the loop exactly as on it', async () => {
    const r = await post('/v1/completions', { prompt: STORY, max_tokens: 2 });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).usage.prompt_tokens).toBe(server.tokenizer.encode(STORY).length);
    const t = await post('/tokenize', { messages: [{ role: 'user', content: STORY }] });
    expect(JSON.parse(t.body).tokens).toEqual(server.tokenizer.encode(STORY));
  });
});
