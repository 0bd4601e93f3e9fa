// The admin API's guard and its refusals, on the real server: off without --admin-api-key; the admin key (and
// only it) opens it; bad bodies, taken names and unknown names are clear errors in OpenAI's envelope; a switch
// to a model that cannot load leaves the old one serving and says why; neither key ever reaches the log.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { createServerLogger } from '../../src/server/server-log.js';
import { startServe } from '../../src/server/serve-cli.js';
import { expectEnvelope } from './helpers/envelope.js';
import { ADMIN_KEY, admin, serverConfig, startNamed, untilModels, watchedNative } from './helpers/models-server.js';
import { expected, storiesDir } from './helpers/stories.js';

const API_KEY = 'api-secret-key-for-tests';
let server: ServeHandle;
let logged = '';

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _enc, done) {
      logged += chunk.toString();
      done();
    },
  });
  const config = serverConfig({ apiKey: API_KEY, logLevel: 'info' });
  const log = createServerLogger({ level: 'info', format: 'json', destination: sink });
  server = await startServe(config, log, {
    models: [{ name: 'a', config, gpuShare: 0.9, source: storiesDir }],
    native: watchedNative().native,
  });
  await server.ready;
});
afterAll(() => server?.close(1000));

const expectError = (r: { status: number; text: string }, code: Parameters<typeof expectEnvelope>[2]) =>
  expectEnvelope(r.status, r.text, code);

describe('the admin API', () => {
  it('is off without --admin-api-key', async () => {
    const s = await startNamed('a', serverConfig({ adminApiKey: undefined }), watchedNative().native);
    try {
      expectError(await admin(s.url, 'GET', '/admin/models'), 'not_found');
    } finally {
      await s.close(0);
    }
  });

  it('takes the admin key only: none, a wrong one or the API key are 401', async () => {
    const none = await fetch(`${server.url}/admin/models`);
    expect(expectEnvelope(none.status, await none.text(), 'invalid_api_key').message).toMatch(/missing admin key/);
    expectError(await admin(server.url, 'GET', '/admin/models', undefined, 'wrong'), 'invalid_api_key');
    expectError(await admin(server.url, 'GET', '/admin/models', undefined, API_KEY), 'invalid_api_key');
    expect((await admin(server.url, 'GET', '/admin/models')).status).toBe(200);
    // And the admin key is no API key.
    const r = await fetch(`${server.url}/v1/models`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(r.status).toBe(401);
  });

  it('refuses bad bodies, taken names and unknown names', async () => {
    const cases: Array<[string, string, unknown, string, string | null]> = [
      ['POST', '/admin/models', { model: storiesDir }, 'invalid_value', 'name'],
      ['POST', '/admin/models', { name: 'x' }, 'invalid_value', 'model'],
      ['POST', '/admin/models', { name: 'x', model: storiesDir, engine: storiesDir }, 'invalid_value', 'model'],
      ['POST', '/admin/models', { name: 'x', model: '/nowhere/at/all' }, 'invalid_value', 'model'],
      ['POST', '/admin/models', { name: 'x', model: storiesDir, max_num_seqs: 0 }, 'invalid_value', 'max-num-seqs'],
      ['POST', '/admin/models', { name: 'x', model: storiesDir, max_num_seqs: '4' }, 'invalid_value', 'max-num-seqs'],
      ['POST', '/admin/models', { name: 'x', model: storiesDir, port: 9 }, 'invalid_value', 'port'],
      ['POST', '/admin/models', { name: 'x y', model: storiesDir }, 'invalid_value', 'name'],
      ['POST', '/admin/models', { name: 'a', model: storiesDir }, 'model_exists', 'name'],
      ['PUT', '/admin/models/nope', { model: storiesDir }, 'model_not_found', 'model'],
      ['PUT', '/admin/models/a', { name: 'b', model: storiesDir }, 'invalid_value', 'name'],
      ['DELETE', '/admin/models/nope', undefined, 'model_not_found', 'model'],
    ];
    for (const [method, path, body, code, param] of cases) {
      const r = await admin(server.url, method, path, body);
      expect(expectError(r, code as Parameters<typeof expectEnvelope>[2]).param, `${method} ${path} ${r.text}`).toBe(
        param,
      );
    }
    expect((await admin(server.url, 'GET', '/admin/models')).json.data).toHaveLength(1);
  });

  it('a switch that fails to load leaves the old model serving, and says why', async () => {
    const broken = mkdtempSync(join(tmpdir(), 'kvserve-broken-'));
    writeFileSync(join(broken, 'config.json'), '{"model_type": "llama"');
    const put = await admin(server.url, 'PUT', '/admin/models/a', { model: broken });
    expect(put.status, put.text).toBe(202);
    const [a] = await untilModels(server.url, (m) => m[0]!.error !== null);
    expect(a).toMatchObject({ state: 'ready', source: storiesDir, loading: null });
    expect(a!.error).toMatch(/config\.json|tokenizer/);
    const r = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({
        model: 'a',
        prompt: expected[0]!.prompt,
        max_tokens: 80,
        temperature: 0,
        ignore_eos: true,
      }),
    });
    expect(r.status).toBe(200);
    const text = ((await r.json()) as { choices: Array<{ text: string }> }).choices[0]!.text;
    expect(text.replace(/^ /, '')).toBe(expected[0]!.greedy_text);
  });

  it('logs neither key, not even in a record that carries the headers or the config', () => {
    expect(logged).toMatch(/admin API on/);
    expect(logged).not.toContain(ADMIN_KEY);
    expect(logged).not.toContain(API_KEY);
    let line = '';
    const sink = new Writable({
      write(chunk, _enc, done) {
        line += chunk.toString();
        done();
      },
    });
    createServerLogger({ level: 'info', format: 'json', destination: sink }).info(
      { req: { headers: { authorization: `Bearer ${ADMIN_KEY}`, 'x-api-key': API_KEY } }, config: serverConfig() },
      'a record with secrets in it',
    );
    expect(line).toMatch(/a record with secrets in it/);
    expect(line).toMatch(/\[redacted\]/);
    expect(line).not.toContain(ADMIN_KEY);
    expect(line).not.toContain(API_KEY);
  });
});
