// The registry's rules with scripted engines (fake-engine.ts) and a loader the test releases by hand: one
// model's full queue is its own (the other model serves on), a load superseded by a later switch or an unload
// is freed once it is up and never serves, and what a request holds is freed only after its reply.
import { afterAll, describe, expect, it } from 'vitest';
import { serverDefaults } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { ModelRegistry } from '../../src/server/model-registry.js';
import { type LoadedModel, ModelSlot } from '../../src/server/model-slot.js';
import type { ModelSpec } from '../../src/server/model-spec.js';
import { closeGracefully, listen } from '../../src/server/server.js';
import { expectEnvelope } from './helpers/envelope.js';
import { FakeEngine } from './helpers/fake-engine.js';
import { loadModel } from './helpers/server.js';
import { expected, storiesDir, storiesScript } from './helpers/stories.js';

const closers: Array<() => Promise<void>> = [];
afterAll(() => Promise.all(closers.map((c) => c())));

const fake = (o: Partial<ConstructorParameters<typeof FakeEngine>[0]> = {}) =>
  new FakeEngine({ script: storiesScript, eosTokenIds: [2], ...o });

async function serve(models: ModelRegistry) {
  const { app, ctx } = await buildApp({ models, servedModelName: models.slots()[0]?.name ?? 'a' });
  const { url } = await listen(app, '127.0.0.1', 0);
  closers.push(() => closeGracefully(app, ctx, async () => undefined, 0));
  return url;
}

const complete = (url: string, model: string, i: number, extra: object = {}) =>
  fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: expected[i]!.prompt, max_tokens: 80, ignore_eos: true, ...extra }),
  });

describe("one model's overload is its own", () => {
  it('a full queue of a is a 503 for a while b serves', async () => {
    const models = new ModelRegistry();
    const slow = fake({ maxRunning: 1, tickMs: 50 });
    models.add(new ModelSlot(await loadModel(slow), { name: 'a', maxQueue: 1 }));
    models.add(new ModelSlot(await loadModel(fake()), { name: 'b', maxQueue: 1 }));
    const url = await serve(models);
    // a: one running, one waiting fills its queue of 1.
    const gone = new AbortController();
    const hold = (i: number) =>
      fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'a',
          prompt: expected[i]!.prompt,
          max_tokens: 400,
          ignore_eos: true,
          stream: true,
        }),
        signal: gone.signal,
      }).catch(() => undefined);
    const held = [hold(0)];
    await until(() => slow.stats().numRunning === 1);
    held.push(hold(1));
    await until(() => slow.stats().numWaiting === 1);
    const full = await complete(url, 'a', 2);
    expectEnvelope(full.status, await full.text(), 'queue_full');
    const other = await complete(url, 'b', 2);
    expect(other.status).toBe(200);
    const text = ((await other.json()) as { choices: Array<{ text: string }> }).choices[0]!.text;
    expect(text.replace(/^ /, '')).toBe(expected[2]!.greedy_text);
    gone.abort();
    await Promise.all(held);
  });
});

/** A loader whose loads finish when the test says, each with a model of its own fake engine. */
function handLoader() {
  const calls: Array<{ spec: ModelSpec; finish: () => Promise<void>; released: () => boolean }> = [];
  const loader = (spec: ModelSpec) =>
    new Promise<LoadedModel>((resolve) => {
      let released = false;
      calls.push({
        spec,
        released: () => released,
        finish: async () => {
          const model = await loadModel(fake());
          model.release = {
            engine: async () => {
              released = true;
            },
            threads: async () => undefined,
          };
          resolve(model);
          await new Promise((r) => setTimeout(r, 10));
        },
      });
    });
  return { loader, calls };
}

const spec = (name: string, source: string): ModelSpec => ({
  name,
  config: { ...serverDefaults(), maxQueue: 0 },
  gpuShare: 0.1,
  source,
});

describe('loads that are overtaken', () => {
  it('a switch superseded by a later one: the earlier model is freed once up and never serves', async () => {
    const { loader, calls } = handLoader();
    const models = new ModelRegistry({ loader, graceMs: 1000 });
    const first = models.load(spec('a', storiesDir));
    await calls[0]!.finish();
    await first.ready;
    void models.switchTo('a', spec('a', 'v2'));
    const latest = models.switchTo('a', spec('a', 'v3'));
    expect(models.list()[0]!.pending).toMatchObject({ kind: 'switch', spec: { source: 'v3' } });
    await calls[2]!.finish();
    await latest;
    await calls[1]!.finish(); // v2 comes up last, and is freed at once
    expect(calls[1]!.released()).toBe(true);
    expect(models.get('a')!.instance!.source).toBe('v3');
    await until(() => calls[0]!.released());
    await models.closeAll();
    expect(calls[2]!.released()).toBe(true);
  });

  it('an unload while the model loads: the name is gone at once, the engine freed when it is up', async () => {
    const { loader, calls } = handLoader();
    const models = new ModelRegistry({ loader });
    const { slot } = models.load(spec('a', storiesDir));
    expect(slot.state).toBe('loading');
    const unloaded = models.unload('a');
    expect(() => models.route('a')).toThrow(/does not exist/);
    await calls[0]!.finish();
    await unloaded;
    expect(calls[0]!.released()).toBe(true);
    expect(models.list()).toEqual([]);
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
