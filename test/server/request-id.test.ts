// Request ids: a client's X-Request-Id (when it is a sane token) or one the server makes comes back on every
// answer (success, error, stream, unknown route) and is on the server's log lines next to the completion id,
// so an operator can find the log of a client's failed request from what the client saw.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers/server.js';
import { expected } from './helpers/stories.js';

const lines: Array<Record<string, unknown>> = [];
const logStream = new Writable({
  write(chunk, _enc, done) {
    for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
    done();
  },
});

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ logLevel: 'info', logStream });
});
afterAll(() => server.close());

const json = { 'content-type': 'application/json' };
const body = (extra: object = {}) => JSON.stringify({ prompt: expected[0]!.prompt, max_tokens: 3, ...extra });

describe('X-Request-Id', () => {
  it('a client id comes back on a success, an error, a stream and a 404', async () => {
    const answers = [
      await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { ...json, 'x-request-id': 'client-1' },
        body: body(),
      }),
      await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { ...json, 'x-request-id': 'client-2' },
        body: body({ temperature: 9 }),
      }),
      await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { ...json, 'x-request-id': 'client-3' },
        body: body({ stream: true }),
      }),
      await fetch(`${server.url}/v1/none`, { headers: { 'x-request-id': 'client-4' } }),
      await fetch(`${server.url}/health`, { headers: { 'x-request-id': 'client-5' } }),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 400, 200, 404, 200]);
    expect(answers.map((r) => r.headers.get('x-request-id'))).toEqual([
      'client-1',
      'client-2',
      'client-3',
      'client-4',
      'client-5',
    ]);
    await Promise.all(answers.map((r) => r.text()));
  });

  it('without one, each answer carries a fresh id', async () => {
    const ids = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: json, body: body() });
        await r.text();
        return r.headers.get('x-request-id');
      }),
    );
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9._:-]{8,128}$/);
    expect(new Set(ids).size).toBe(5);
  });

  it('an id that is too long or carries other characters is replaced, never echoed', async () => {
    for (const bad of ['x'.repeat(129), 'has space', 'semi;colon', 'quote"d', '']) {
      const r = await fetch(`${server.url}/health`, { headers: { 'x-request-id': bad } });
      const id = r.headers.get('x-request-id')!;
      expect(id).not.toBe(bad);
      expect(id).toMatch(/^[A-Za-z0-9._:-]{8,128}$/);
    }
  });

  it('the log line of a generation carries the request id and the completion id', async () => {
    const r = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { ...json, 'x-request-id': 'find-me-7' },
      body: body(),
    });
    const completion = (await r.json()) as { id: string };
    const mine = lines.filter((l) => l.reqId === 'find-me-7');
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.some((l) => l.completionId === completion.id)).toBe(true);
  });

  it("an engine fault's log line holds the detail the client does not see, under the client's id", async () => {
    server.engine.failNext = 'batch check failed: topP[4] must be in (0, 1]';
    const r = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { ...json, 'x-request-id': 'fault-9' },
      body: body(),
    });
    expect(r.status).toBe(500);
    await r.text();
    const mine = lines.filter((l) => l.reqId === 'fault-9');
    expect(mine.some((l) => JSON.stringify(l).includes('topP[4]'))).toBe(true);
  });
});
