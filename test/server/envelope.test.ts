// Every answer that is not a success is OpenAI's error envelope, including the ones fastify or Node's HTTP
// parser would otherwise write in their own shapes: unknown routes, wrong methods, bad URLs, oversized
// request lines and headers, unparsable HTTP, bad JSON and wrong content types. Internal details of the
// engine's batch never reach a client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectEnvelope } from './helpers/envelope.js';
import { parseResponse, rawConnect, rawRoundTrip } from './helpers/raw-http.js';
import { startTestServer, type TestServer } from './helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

async function call(method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(server.url + path, { method, headers: init.headers, body: init.body });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

describe('routes and methods', () => {
  it('an unknown route is a 404 in the envelope, naming the method and path', async () => {
    for (const [method, path] of [
      ['GET', '/v1/nothing'],
      ['POST', '/nothing?x=1'],
      ['GET', '/nothing/here'],
    ]) {
      const r = await call(
        method!,
        path!,
        method === 'POST' ? { body: '{}', headers: { 'content-type': 'application/json' } } : {},
      );
      const e = expectEnvelope(r.status, r.body, 'not_found');
      expect(e.message).toContain(`${method} ${path!.split('?')[0]}`);
    }
  });

  it('a known route with the wrong method is a 405 with Allow', async () => {
    const cases: Array<[string, string, string]> = [
      ['GET', '/v1/chat/completions', 'POST'],
      ['PUT', '/v1/completions', 'POST'],
      ['DELETE', '/health', 'GET, HEAD'],
      ['POST', '/v1/models', 'GET, HEAD'],
      ['PATCH', '/v1/models/stories260K', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const r = await call(method, path);
      expectEnvelope(r.status, r.body, 'method_not_allowed');
      expect(r.headers.get('allow')).toBe(allow);
    }
  });

  it('a URL that does not decode is a 400 in the envelope', async () => {
    const r = await rawRoundTrip(
      server.url,
      'GET /v1/models/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expectEnvelope(r.status, r.body, 'invalid_url');
  });
});

describe('what the HTTP parser refuses', () => {
  it('a request line longer than the URL limit is a 414', async () => {
    // Under Node's header limit (16 KiB) the app refuses it; above it, the parser does.
    for (const size of [10_000, 20_000]) {
      const r = await rawRoundTrip(
        server.url,
        `GET /v1/models?q=${'a'.repeat(size)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      expectEnvelope(r.status, r.body, 'uri_too_long');
    }
  });

  it('headers beyond the limit are a 431', async () => {
    const r = await rawRoundTrip(server.url, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
    expectEnvelope(r.status, r.body, 'headers_too_large');
    expect(r.closedAfterMs).toBeDefined();
  });

  it('bytes that are not HTTP are a 400 and the connection closes', async () => {
    for (const junk of [
      'HELLO\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
      '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n',
    ]) {
      const r = await rawRoundTrip(server.url, junk);
      expectEnvelope(r.status, r.body, 'malformed_request');
      expect(r.closedAfterMs).toBeDefined();
    }
  });

  it('a request after a malformed one on the same socket gets nothing: the connection is closed', async () => {
    const x = await rawConnect(server.url, 'NOT HTTP\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await x.closed;
    expect(parseResponse(x.received()).status).toBe(400);
    expect(x.received().match(/(^|\r\n)HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
  });
});

describe('bodies', () => {
  const json = { 'content-type': 'application/json' };
  it('malformed JSON, an empty body, a wrong or missing content type', async () => {
    const bad = await call('POST', '/v1/completions', { body: '{"prompt": ', headers: json });
    expectEnvelope(bad.status, bad.body, 'invalid_json');
    const empty = await call('POST', '/v1/completions', { body: '', headers: json });
    expectEnvelope(empty.status, empty.body, 'invalid_json');
    const text = await call('POST', '/v1/completions', { body: 'hello', headers: { 'content-type': 'text/plain' } });
    expectEnvelope(text.status, text.body, 'unsupported_media_type');
    const none = await rawRoundTrip(
      server.url,
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
    );
    expectEnvelope(none.status, none.body, 'unsupported_media_type');
    const array = await call('POST', '/v1/completions', { body: '[1, 2]', headers: json });
    expectEnvelope(array.status, array.body, 'invalid_value');
  });
});

describe('engine faults', () => {
  it("a fault is a 500 that names the request, never the engine's batch internals", async () => {
    server.engine.failNext = 'batch check failed: topP[4] must be in (0, 1]';
    const r = await call('POST', '/v1/completions', {
      body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 3 }),
      headers: { 'content-type': 'application/json' },
    });
    const e = expectEnvelope(r.status, r.body, 'engine_fault');
    expect(e.message).not.toMatch(/topP|\[\d+\]/);
    expect(e.message).toContain(r.headers.get('x-request-id'));
  });
});
