// An engine that dies under the real server is restarted by itself. The fault is injected below the engine
// loop: the native engine is disposed underneath it, at a chosen step (what the addon then does to every step — reject it,
// unpinned on any sequence — is what a CUDA error or a native exception looks like to the loop). The requests
// on it get a 503 (model_unhealthy: a reply, or an SSE error event once streaming), new requests a 503 with
// Retry-After while it restarts, /health says so per model and /livez stays 200; after the backoff a new
// engine answers the transformers reference again. An engine that cannot be brought back within
// --max-restarts leaves the model failed and /livez 503, so that Kubernetes restarts the process.
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { expectEnvelope } from './helpers/envelope.js';
import { adminModels, serverConfig, startNamed, until, watchedNative } from './helpers/models-server.js';
import { expected } from './helpers/stories.js';

const servers: ServeHandle[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close(1000))));

async function start(overrides: Parameters<typeof serverConfig>[0]) {
  const watched = watchedNative();
  const server = await startNamed('stories260K', serverConfig(overrides), watched.native);
  servers.push(server);
  await server.ready;
  return { server, watched, client: new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 }) };
}

const body = (i: number, extra: object = {}) => ({
  model: 'stories260K',
  prompt: expected[i]!.prompt,
  max_tokens: 80,
  temperature: 0,
  ignore_eos: true,
  ...extra,
});
const post = (url: string, b: object) =>
  fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(b),
  });

describe('an engine that fails', () => {
  it('its requests get 503, the model restarts by itself and answers the reference again', async () => {
    // A backoff long enough that the requests below see the model restarting.
    const { server, watched, client } = await start({ restartBackoff: 3 });
    const [first] = watched.engines;

    // A stream in flight when the engine dies, and a non-streamed request beside it.
    const stream = await post(server.url, body(0, { stream: true, max_tokens: 400 }));
    const reader = stream.body!.getReader();
    const firstChunk = new TextDecoder().decode((await reader.read()).value);
    expect(firstChunk).toMatch(/^data: /);
    // The engine goes once both run in one step: that step and every later one reject.
    watched.control.breakWhen = (batch) => batch.contextLens.length === 2;
    const plain = post(server.url, body(1, { max_tokens: 400 }));

    let rest = '';
    for (let k = 0; k < 10_000; k++) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    const events = rest.split('\n\n').filter((e) => e.startsWith('data: '));
    expect(events.at(-1)).toBe('data: [DONE]');
    const error = JSON.parse(events.at(-2)!.slice(6));
    expect(error.error).toMatchObject({ code: 'model_unhealthy', type: 'server_error' });
    const p = await plain;
    expectEnvelope(p.status, await p.text(), 'model_unhealthy');

    // While it restarts: a 503 with Retry-After, /health 503 per model, /livez 200.
    const during = await post(server.url, body(2));
    expect(Number(during.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(expectEnvelope(during.status, await during.text(), 'model_unhealthy').message).toMatch(/restarting/);
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(503);
    // One model: /health's body has no per-model map (the single-model contract), its status says it all.
    expect(await health.json()).toEqual({ status: 'unhealthy', error: expect.stringMatching(/disposed/) });
    expect((await fetch(`${server.url}/livez`)).status).toBe(200);

    await until(async () => (await fetch(`${server.url}/health`)).status === 200, 'the restart', 60_000);
    expect(watched.engines).toHaveLength(2);
    expect(first!.disposed).toBe(true);
    const answers = await Promise.all(
      expected.map((_, i) => client.completions.create(body(i) as OpenAI.CompletionCreateParamsNonStreaming)),
    );
    for (const [i, r] of answers.entries()) {
      expect(r.choices[0]!.text.replace(/^ /, ''), `prompt ${i}`).toBe(expected[i]!.greedy_text);
    }
    const [model] = await adminModels(server.url);
    expect(model).toMatchObject({ state: 'ready', restarts: 1 });
    expect(await (await fetch(`${server.url}/health`)).json()).toEqual({ status: 'ok' });
  });

  it('an engine that cannot be restarted within --max-restarts: the model fails, /livez turns 503', async () => {
    const { server, watched } = await start({ restartBackoff: 0.05, maxRestarts: 2 });
    watched.control.failLoads = true;
    watched.engines[0]!.native.dispose();
    // The fault shows at the next step.
    const r = await post(server.url, body(0));
    expectEnvelope(r.status, await r.text(), 'model_unhealthy');
    await until(async () => (await fetch(`${server.url}/livez`)).status === 503, '/livez failing', 30_000);
    expect(await (await fetch(`${server.url}/livez`)).json()).toMatchObject({
      status: 'failed',
      model: 'stories260K',
      error: expect.stringMatching(/load refused by the test/),
    });
    const [model] = await adminModels(server.url);
    expect(model).toMatchObject({ state: 'failed', restarts: 2 });
    const after = await post(server.url, body(0));
    expectEnvelope(after.status, await after.text(), 'model_unavailable');
    expect((await fetch(`${server.url}/health`)).status).toBe(503);
  });
});
