// One request's fault ends that request alone, on the real CPU engine: its neighbours in the same steps get
// exactly the tokens transformers computed for them alone, the faulted one gets a clear error, and no KV
// block stays in use. Two faults, both injected below the HTTP validation:
//   - a sampling value the native batch check refuses (top_p that is 0 as a float32, written into the
//     request's parameters after it was validated): the step is refused, pinned on that sequence, and runs
//     again without it;
//   - logits that become NaN (a checkpoint whose embedding row for one token is NaN, which only the
//     sequence holding that token reads): the sampler reports that row, the step's other rows stand.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { engineDefaults, finishEngineConfig } from '../../src/config.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import type { RequestOutput } from '../../src/engine/types.js';
import { loadExpected, storiesDir } from '../native/harness.js';
import { greedy } from './greedy.js';

const work = mkdtempSync(join(tmpdir(), 'kvserve-fault-isolation-'));
const engines: Engine[] = [];
afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
  rmSync(work, { recursive: true, force: true });
});

async function start(model: string): Promise<Engine> {
  const engine = await createEngine(
    finishEngineConfig({ ...engineDefaults(), model, device: 'cpu', threads: 2, maxNumSeqs: 8 }),
  );
  engines.push(engine);
  return engine;
}

async function collect(
  stream: AsyncIterable<RequestOutput>,
  onOutput?: (o: RequestOutput, tokens: number) => void,
): Promise<RequestOutput[]> {
  const outs: RequestOutput[] = [];
  let tokens = 0;
  for await (const o of stream) {
    outs.push(o);
    tokens += o.newTokenIds.length;
    onOutput?.(o, tokens);
  }
  return outs;
}

const tokensOf = (outs: RequestOutput[]) => outs.flatMap((o) => o.newTokenIds);

function expectNothingInUse(engine: Engine) {
  expect(engine.client.stats()).toMatchObject({
    numRunning: 0,
    numWaiting: 0,
    kvCacheUsage: 0,
    numFreeKvBlocks: engine.info.numKvBlocks,
  });
}

describe('a fault pinned on one request', () => {
  it('a sampling value the batch check refuses, mid-generation: the neighbours go on as if alone', async () => {
    const engine = await start(storiesDir);
    const expected = loadExpected();
    const neighbours = expected.map((e, i) =>
      collect(engine.client.submit({ id: `n${i}`, promptTokenIds: e.prompt_ids, sampling: greedy(40) })),
    );
    const badSampling = greedy(40);
    let poisonedAt = -1;
    const bad = collect(
      engine.client.submit({ id: 'bad', promptTokenIds: expected[0]!.prompt_ids, sampling: badSampling }),
      (_o, n) => {
        // Validated at submit; from its 5th token on, the step carries top_p 1e-320, which is 0 as a float32.
        if (n >= 5 && poisonedAt < 0) {
          poisonedAt = n;
          badSampling.topP = 1e-320;
          badSampling.temperature = 1;
        }
      },
    );
    const outs = await bad;
    expect(poisonedAt).toBe(5);
    expect(outs.at(-1)).toMatchObject({ finished: true, finishReason: 'error' });
    expect(outs.at(-1)!.error).toMatch(/the engine refused this request: top_p = 0 .*outside \(0, 1\]/);
    expect(tokensOf(outs)).toEqual(expected[0]!.greedy_ids.slice(0, tokensOf(outs).length));
    const results = await Promise.all(neighbours);
    results.forEach((r, i) => {
      expect(r.at(-1)).toMatchObject({ finished: true, finishReason: 'length' });
      expect(tokensOf(r)).toEqual(expected[i]!.greedy_ids.slice(0, 40));
    });
    expectNothingInUse(engine);
    // The engine serves on.
    const after = await collect(
      engine.client.submit({ id: 'after', promptTokenIds: expected[1]!.prompt_ids, sampling: greedy(10) }),
    );
    expect(tokensOf(after)).toEqual(expected[1]!.greedy_ids.slice(0, 10));
  });

  it('logits that turn NaN for one sequence: it ends with an error, its neighbours get their reference tokens', async () => {
    const fixture = resolve(import.meta.dirname, '..', 'fixtures', 'mistral');
    const reference = JSON.parse(readFileSync(join(fixture, 'expected.json'), 'utf8'));
    const prompts: number[][] = reference.prompts;
    const greedyIds: number[][] = reference.references.exact.greedy_ids;
    // A token that no neighbour's prompt or reference output holds; its embedding row becomes NaN.
    const used = new Set([...prompts.flat(), ...greedyIds.flat()]);
    const poison = [...Array(512).keys()].find((t) => t > 2 && !used.has(t))!;
    const dir = join(work, 'mistral-nan-row');
    copyFolder(fixture, dir);
    poisonEmbeddingRow(join(dir, 'model.safetensors'), poison);

    const engine = await start(dir);
    const neighbours = prompts.map((p, i) =>
      collect(engine.client.submit({ id: `m${i}`, promptTokenIds: p, sampling: greedy(24) })),
    );
    // The bias makes its first token the poisoned one; the step after that reads its NaN embedding.
    const outs = await collect(
      engine.client.submit({
        id: 'nan',
        promptTokenIds: prompts[0]!,
        sampling: greedy(24, { logitBias: { [poison]: 100 } }),
      }),
    );
    expect(tokensOf(outs)).toEqual([poison]);
    expect(outs.at(-1)).toMatchObject({ finished: true, finishReason: 'error' });
    expect(outs.at(-1)!.error).toMatch(/non-finite logits \(NaN or infinity\) for this request at output token 2/);
    const results = await Promise.all(neighbours);
    for (const [i, r] of results.entries()) expect(tokensOf(r)).toEqual(greedyIds[i]);
    // A request whose prompt holds the poisoned token fails at its first token, and only it.
    const [first, fine] = await Promise.all([
      collect(engine.client.submit({ id: 'nan2', promptTokenIds: [1, poison, 7], sampling: greedy(4) })),
      collect(engine.client.submit({ id: 'fine', promptTokenIds: prompts[1]!, sampling: greedy(24) })),
    ]);
    expect(first).toEqual([
      expect.objectContaining({
        finished: true,
        finishReason: 'error',
        error: expect.stringMatching(/output token 1/),
      }),
    ]);
    expect(tokensOf(fine)).toEqual(greedyIds[1]);
    expectNothingInUse(engine);
  });
});

function copyFolder(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) copyFileSync(join(from, f), join(to, f));
}

/** Writes NaN over row `token` of model.embed_tokens.weight (float32) in a safetensors file. */
function poisonEmbeddingRow(path: string, token: number): void {
  const buf = readFileSync(path);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  const t = header['model.embed_tokens.weight'];
  expect(t.dtype).toBe('F32');
  const hidden = t.shape[1] as number;
  const start = 8 + headerLen + t.data_offsets[0] + token * hidden * 4;
  for (let i = 0; i < hidden; i++) buf.writeFloatLE(Number.NaN, start + i * 4);
  writeFileSync(path, buf);
}
