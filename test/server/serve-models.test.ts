// Which models `kvserve serve` starts with: repeated --model NAME=DIR and --models-file (YAML or JSON), each
// model's own settings over the server's flags, GPU memory split by explicit fractions; and the GPU shares the
// registry asks the native side for as models come and go. Then the real process with two models.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ServerConfig, serverDefaults } from '../../src/config.js';
import { ApiError } from '../../src/server/errors.js';
import { ModelRegistry } from '../../src/server/model-registry.js';
import { type ModelSpec, modelSpec, namedModelArg } from '../../src/server/model-spec.js';
import { initialSpecs, takeModelFlags } from '../../src/server/serve-models.js';
import { killChildren, spawnServe, untilHealthy } from './helpers/child-server.js';
import { FakeEngine } from './helpers/fake-engine.js';
import { qwenDir, storiesCopy } from './helpers/models-server.js';
import { loadModel } from './helpers/server.js';
import { expected, storiesDir, storiesScript } from './helpers/stories.js';

afterAll(killChildren);
const silent = pino({ level: 'silent' });
const base: ServerConfig = { ...serverDefaults(), device: 'cpu' };
const work = mkdtempSync(join(tmpdir(), 'kvserve-serve-models-'));
const file = (name: string, text: string) => {
  const p = join(work, name);
  writeFileSync(p, text);
  return p;
};

describe('--model NAME=DIR and --models-file', () => {
  it('one plain --model is the single-model server, as before; NAME= or a repeat names several', () => {
    expect(takeModelFlags(['--model', storiesDir, '--port', '1'])).toEqual({
      argv: ['--port', '1', '--model', storiesDir],
      models: [],
    });
    expect(takeModelFlags(['--model=a=x', '--model', 'b=y', '--port', '1'])).toEqual({
      argv: ['--port', '1'],
      models: ['a=x', 'b=y'],
    });
    expect(namedModelArg('a=models/x')).toEqual({ name: 'a', model: 'models/x' });
    expect(namedModelArg('org/name')).toEqual({ model: 'org/name' });
    expect(() => namedModelArg('a=')).toThrow(ConfigError);
  });

  it('splits --gpu-memory-utilization evenly among the models that name no share of their own', async () => {
    const yaml = file(
      'models.yaml',
      `models:\n  - name: big\n    model: ${storiesDir}\n    gpu_memory_utilization: 0.5\n    max-num-seqs: 8\n  - name: q\n    model: ${qwenDir}\n    max_queue: 3\n`,
    );
    const specs = await initialSpecs(
      { ...base, gpuMemoryUtilization: 0.9, modelsFile: yaml },
      [`s=${storiesDir}`],
      silent,
      { hubProgress: false },
    );
    expect(specs.map((s) => [s.name, s.gpuShare, s.config.maxNumSeqs, s.config.maxQueue])).toEqual([
      ['s', 0.2, 256, 1024],
      ['big', 0.5, 8, 1024],
      ['q', 0.2, 256, 3],
    ]);
    expect(specs[2]!.config.model).toBe(qwenDir);
    expect(specs[0]!.config.tokenizer).toBe(storiesDir); // each config final: paths resolved
  });

  it('refuses what it cannot serve, naming the entry and the setting', async () => {
    const bad = async (args: string[], cfg: Partial<ServerConfig>) =>
      (await initialSpecs({ ...base, ...cfg }, args, silent, { hubProgress: false }).catch((e: Error) => e)) as Error;
    expect((await bad([`a=${storiesDir}`, `a=${qwenDir}`], {})).message).toMatch(/two models are named "a"/);
    expect((await bad([`a=${storiesDir}`, `b=${qwenDir}`], { servedModelName: 'x' })).message).toMatch(
      /--served-model-name names the one model/,
    );
    const json = file('m.json', JSON.stringify([{ name: 'a', model: storiesDir, 'max-num-seqs': -1 }]));
    expect((await bad([], { modelsFile: json })).message).toMatch(
      /entry 1 \("a"\): max-num-seqs must be at least 1, got -1/,
    );
    const unknown = file('u.json', JSON.stringify({ models: [{ name: 'a', model: storiesDir, host: '0.0.0.0' }] }));
    expect((await bad([], { modelsFile: unknown })).message).toMatch(/unknown setting "host"/);
    const notYaml = file('n.yaml', 'models: [');
    expect((await bad([], { modelsFile: notYaml })).message).toMatch(/is not valid YAML/);
    const shares = file('s.json', JSON.stringify([{ name: 'a', model: storiesDir, gpu_memory_utilization: 0.88 }]));
    expect((await bad([`b=${qwenDir}`], { modelsFile: shares })).message).toMatch(/give each model its own share/);
    expect(() => modelSpec({ name: 'a', model: 7 }, base, 'x', 0.5)).toThrow(/"model" must be a path/);
  });
});

describe('GPU shares: each engine holds its own fraction while it lives', () => {
  it('asks the native side for what lives plus the new share, and refuses what does not fit', async () => {
    const asked: Array<[string, number]> = [];
    const registry = new ModelRegistry({
      onGpu: () => true,
      graceMs: 1000,
      loader: async (spec, o) => {
        asked.push([spec.name, o.gpuMemoryUtilization]);
        return loadModel(new FakeEngine({ script: storiesScript, eosTokenIds: [2] }));
      },
    });
    const spec = (name: string, gpuShare: number): ModelSpec => ({
      name,
      config: { ...base, maxQueue: 0 },
      gpuShare,
      source: storiesDir,
    });
    await registry.load(spec('a', 0.4)).ready;
    await registry.load(spec('b', 0.3)).ready;
    expect(asked).toEqual([
      ['a', 0.4],
      ['b', 0.7],
    ]);
    // A switch needs room for both engines at once: a's 0.4 stays until its old engine is freed.
    const refused = (() => {
      try {
        registry.switchTo('a', spec('a', 0.4));
      } catch (e) {
        return e as ApiError;
      }
    })();
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused!.code).toBe('insufficient_gpu_memory');
    await registry.switchTo('a', spec('a', 0.3));
    expect(asked.at(-1)![1]).toBeCloseTo(1.0);
    await registry.unload('b');
    await registry.load(spec('c', 0.5)).ready; // b's 0.3 and a's old 0.4 are free again
    expect(asked.at(-1)![1]).toBeCloseTo(0.8);
    await registry.closeAll();
  });
});

describe('kvserve serve with two models (a process)', () => {
  it('serves each under its name, against its own reference, and lists both', async () => {
    const s = spawnServe(['--model', `a=${storiesDir}`, '--model', `b=${storiesCopy()}`, '--max-num-seqs', '4']);
    const url = await s.url;
    await untilHealthy(url);
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(['a', 'b']);
    const health = (await (await fetch(`${url}/health`)).json()) as object;
    expect(health).toMatchObject({ status: 'ok', models: { a: { state: 'ready' }, b: { state: 'ready' } } });
    for (const model of ['a', 'b', undefined]) {
      const r = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt: expected[3]!.prompt, max_tokens: 80, temperature: 0, ignore_eos: true }),
      });
      const json = (await r.json()) as { model: string; choices: Array<{ text: string }> };
      expect(json.model).toBe(model ?? 'a'); // no model: the first
      expect(json.choices[0]!.text.replace(/^ /, '')).toBe(expected[3]!.greedy_text);
    }
    // The log names each model's load.
    const ready = s.records().filter((r) => r.msg === 'ready');
    expect(ready.map((r) => r.model).sort()).toEqual(['a', 'b']);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });
});
