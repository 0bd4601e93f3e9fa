// The exact bytes of a stream, read off a raw socket response (no SSE library in between).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers/server.js';
import { expected } from './helpers/stories.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

async function rawStream(path: string, body: unknown): Promise<{ status: number; type: string | null; raw: string }> {
  const res = await fetch(server.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, type: res.headers.get('content-type'), raw: await res.text() };
}

/** Splits the body into events, asserting the framing: every event is exactly `data: <payload>\n\n`. */
function events(raw: string): string[] {
  expect(raw.endsWith('data: [DONE]\n\n')).toBe(true);
  const parts = raw.split('\n\n');
  expect(parts.pop()).toBe(''); // the body ends with a blank line and nothing after it
  for (const p of parts) expect(p).toMatch(/^data: [^\n]+$/);
  return parts.map((p) => p.slice('data: '.length));
}

describe('SSE framing', () => {
  it('chat: a role-only first chunk, one id and created, finish chunk, usage chunk, [DONE]', async () => {
    const { status, type, raw } = await rawStream('/v1/chat/completions', {
      messages: [{ role: 'user', content: expected[0]!.prompt }],
      max_tokens: 6,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/event-stream/);
    const payloads = events(raw);
    expect(payloads.pop()).toBe('[DONE]');
    const chunks = payloads.map((p) => JSON.parse(p));
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(new Set(chunks.map((c) => c.created)).size).toBe(1);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0]).toEqual({
      index: 0,
      delta: { role: 'assistant', content: '' },
      logprobs: null,
      finish_reason: null,
    });
    expect(chunks[1].choices[0].delta).toEqual({ content: ',' });
    expect(
      chunks.slice(1, -2).every((c) => c.choices[0].delta.role === undefined && c.choices[0].finish_reason === null),
    ).toBe(true);
    const finish = chunks.at(-2);
    expect(finish.choices[0]).toMatchObject({ index: 0, delta: {}, finish_reason: 'length' });
    const usage = chunks.at(-1);
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 });
    // With include_usage, every other chunk says usage: null.
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(expected[0]!.greedy_text.startsWith(text)).toBe(true);
  });

  it('completions: text_completion chunks, no usage chunk unless asked', async () => {
    const { raw } = await rawStream('/v1/completions', { prompt: expected[0]!.prompt, max_tokens: 4, stream: true });
    const payloads = events(raw);
    expect(payloads.pop()).toBe('[DONE]');
    const chunks = payloads.map((p) => JSON.parse(p));
    expect(chunks.every((c) => c.object === 'text_completion' && c.usage === undefined)).toBe(true);
    expect(chunks.at(-1).choices[0]).toMatchObject({ text: '', finish_reason: 'length' });
    expect(chunks.map((c) => c.choices[0].text).join('')).toBe(', there was a');
  });

  it('never splits a UTF-8 character across chunks (byte-fallback tokens)', async () => {
    // " 日本" is ▁ then six byte tokens <0xE6><0x97><0xA5><0xE6><0x9C><0xAC>.
    const ids = server.tokenizer.encode(' 日本', false);
    expect(ids.length).toBeGreaterThan(3);
    const s = await startTestServer({ engine: { script: () => ids } });
    try {
      const res = await fetch(`${s.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'x', max_tokens: ids.length, stream: true }),
      });
      const texts = events(await res.text())
        .slice(0, -1)
        .map((p) => JSON.parse(p).choices[0].text as string);
      for (const t of texts) expect(t).not.toContain('\uFFFD');
      // Reference: the whole sequence decoded at once, minus the prompt.
      const promptIds = server.tokenizer.encode('x');
      const whole = server.tokenizer.decode([...promptIds, ...ids]);
      expect(texts.join('')).toBe(whole.slice(server.tokenizer.decode(promptIds).length));
      // Each character arrives in one piece, with the chunk of its last byte.
      expect(texts.filter((t) => /[日本]/.test(t))).toEqual(['日', '本']);
    } finally {
      await s.close();
    }
  });

  it('a stop string split across many chunks is held back and never sent', async () => {
    const stop = 'little girl named';
    const { raw } = await rawStream('/v1/completions', {
      prompt: expected[0]!.prompt,
      max_tokens: 40,
      stream: true,
      stop,
    });
    const chunks = events(raw)
      .slice(0, -1)
      .map((p) => JSON.parse(p));
    const text = chunks.map((c) => c.choices[0].text).join('');
    expect(text).toBe(expected[0]!.greedy_text.slice(0, expected[0]!.greedy_text.indexOf(stop)));
    expect(chunks.at(-1).choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: stop });
  });
});
