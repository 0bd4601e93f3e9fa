// A client that stalls (in its headers, in its body, or idle on a keep-alive connection) is answered with
// a 408 in the envelope and disconnected, so it cannot hold a socket forever; a response that takes longer
// than those timeouts (a long SSE stream) is never cut by them. Timeouts are small here; the bounds the
// tests wait are several times larger, so they are correctness bounds, not measurements.
import type { Completion } from 'openai/resources/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from './helpers/config.js';
import { expectEnvelope } from './helpers/envelope.js';
import { parseResponse, rawConnect } from './helpers/raw-http.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { expected } from './helpers/stories.js';

const HEADER_MS = 300;
const BODY_MS = 600;
const KEEP_ALIVE_MS = 300;
const BOUND_MS = 4000; // far above any of them, far below the test timeout

let server: TestServer;
beforeAll(async () => {
  // 20 ms per token: a 100-token stream runs 2 s, longer than every timeout above.
  server = await startTestServer({
    engine: { tickMs: 20 },
    headerTimeoutMs: HEADER_MS,
    requestTimeoutMs: BODY_MS,
    keepAliveTimeoutMs: KEEP_ALIVE_MS,
  });
});
afterAll(() => server.close());

async function closedWithin(x: { closed: Promise<number> }, ms: number): Promise<number> {
  const t = await Promise.race([x.closed, new Promise<number>((r) => setTimeout(() => r(Infinity), ms))]);
  expect(t, 'the server never closed the connection').toBeLessThan(ms);
  return t;
}

describe('stalled clients', () => {
  it('a body that stops arriving is a 408 and a closed connection', async () => {
    const x = await rawConnect(
      server.url,
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt":',
    );
    const t = await closedWithin(x, BOUND_MS);
    expect(t).toBeGreaterThanOrEqual(BODY_MS - 50);
    const r = parseResponse(x.received());
    expectEnvelope(r.status, r.body, 'request_timeout');
    expect(r.headers.connection).toBe('close');
  });

  it('headers that never end are a 408', async () => {
    const x = await rawConnect(server.url, 'GET /health HTTP/1.1\r\nHost: x\r\n');
    await closedWithin(x, BOUND_MS);
    const r = parseResponse(x.received());
    expectEnvelope(r.status, r.body, 'request_timeout');
  });

  it('a connection that never sends anything is closed', async () => {
    const x = await rawConnect(server.url);
    await closedWithin(x, BOUND_MS);
  });

  it('an idle keep-alive connection is closed after the keep-alive timeout', async () => {
    const x = await rawConnect(server.url, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    const t = await closedWithin(x, BOUND_MS);
    expect(parseResponse(x.received()).status).toBe(200);
    expect(t).toBeGreaterThanOrEqual(KEEP_ALIVE_MS - 50);
  });

  it('a body that trickles in but completes within the timeout is served', async () => {
    const body = JSON.stringify({ prompt: expected[0]!.prompt, max_tokens: 2 });
    const x = await rawConnect(
      server.url,
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    );
    for (let i = 0; i < body.length; i += 10) {
      x.write(body.slice(i, i + 10));
      await new Promise((r) => setTimeout(r, 20));
    }
    await closedWithin(x, BOUND_MS);
    expect(parseResponse(x.received()).status).toBe(200);
  });
});

describe('long responses', () => {
  it('an SSE stream longer than every timeout runs to [DONE]', async () => {
    const started = Date.now();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: expected[0]!.prompt, max_tokens: 100, ignore_eos: true, stream: true }),
    });
    const raw = await res.text();
    expect(Date.now() - started).toBeGreaterThan(BODY_MS + HEADER_MS + KEEP_ALIVE_MS);
    expect(raw.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(raw).toContain('"finish_reason":"length"');
    expect(raw).not.toContain('"error"');
  });

  it('a non-streamed answer longer than every timeout arrives whole', async () => {
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: expected[0]!.prompt, max_tokens: 60, ignore_eos: true }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Completion).usage!.completion_tokens).toBe(60);
  });
});

describe('flags', () => {
  it('--header-timeout, --request-body-timeout and --keep-alive-timeout are seconds, with defaults', () => {
    expect(parseConfig([])).toMatchObject({ headerTimeout: 10, requestBodyTimeout: 30, keepAliveTimeout: 5 });
    expect(
      parseConfig(['--header-timeout', '0.5', '--request-body-timeout', '2', '--keep-alive-timeout', '1']),
    ).toMatchObject({
      headerTimeout: 0.5,
      requestBodyTimeout: 2,
      keepAliveTimeout: 1,
    });
    expect(() => parseConfig(['--header-timeout', '40', '--request-body-timeout', '30'])).toThrow(
      /--header-timeout \(40\) must not exceed --request-body-timeout \(30\)/,
    );
    expect(() => parseConfig(['--keep-alive-timeout', '-1'])).toThrow(/at least 0/);
  });
});
