// CORS (off by default, --allowed-origins to enable, preflight answered without a key), /ping, /version and
// 405 on a known route, through a real socket.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, corsOrigins } from '../../src/config.js';
import type { ErrorBody } from '../../src/server/errors.js';
import { MODEL, startTestServer, type TestServer } from './helpers/server.js';

const version = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
const preflight = (url: string, origin: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
    },
  });

describe('CORS off (the default)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it('sends no CORS headers, and a preflight is a 405 on a POST route', async () => {
    const res = await fetch(`${server.url}/v1/models`, { headers: { origin: 'https://app.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const pre = await preflight(server.url, 'https://app.example');
    expect(pre.status).toBe(405);
    expect(pre.headers.get('allow')).toBe('POST');
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('/ping and /version; a wrong method on a known route is a 405 with Allow', async () => {
    expect((await fetch(`${server.url}/ping`)).status).toBe(200);
    expect((await fetch(`${server.url}/ping`, { method: 'POST' })).status).toBe(200);
    expect(await (await fetch(`${server.url}/version`)).json()).toEqual({ version });
    const res = await fetch(`${server.url}/v1/responses`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(((await res.json()) as ErrorBody).error.code).toBe('method_not_allowed');
  });
});

describe('CORS on (--allowed-origins) with an API key', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ allowedOrigins: ['https://app.example'], apiKey: 'k' });
  });
  afterAll(() => server.close());

  it('answers the preflight of an allowed origin, without the key browsers do not send on it', async () => {
    const pre = await preflight(server.url, 'https://app.example');
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(pre.headers.get('access-control-allow-methods')).toMatch(/POST/);
    expect(pre.headers.get('access-control-allow-headers')).toMatch(/authorization/i);
  });

  it('marks answers to an allowed origin only; the key is still required', async () => {
    const client = new OpenAI({
      baseURL: server.baseURL,
      apiKey: 'k',
      maxRetries: 0,
      defaultHeaders: { origin: 'https://app.example' },
    });
    const ok = await fetch(`${server.url}/v1/models`, {
      headers: { origin: 'https://app.example', authorization: 'Bearer k' },
    });
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(ok.headers.get('access-control-expose-headers')).toMatch(/x-request-id/);
    const other = await fetch(`${server.url}/v1/models`, {
      headers: { origin: 'https://evil.example', authorization: 'Bearer k' },
    });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect((await fetch(`${server.url}/v1/models`, { headers: { origin: 'https://app.example' } })).status).toBe(401);
    expect((await client.models.list()).data[0]!.id).toBe(MODEL);
  });

  it('/ping and /version need no key', async () => {
    expect((await fetch(`${server.url}/ping`)).status).toBe(200);
    expect((await fetch(`${server.url}/version`)).status).toBe(200);
  });
});

describe('--allowed-origins', () => {
  it('takes origins or * alone, and says why it refuses anything else', () => {
    expect(corsOrigins('')).toEqual([]);
    expect(corsOrigins('https://a.example, http://localhost:3000')).toEqual([
      'https://a.example',
      'http://localhost:3000',
    ]);
    expect(corsOrigins('*')).toEqual(['*']);
    expect(() => corsOrigins('https://a.example/path')).toThrow(ConfigError);
    expect(() => corsOrigins('a.example')).toThrow(/not an origin/);
    expect(() => corsOrigins('*,https://a.example')).toThrow(/alone/);
  });
});
