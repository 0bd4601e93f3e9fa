// --engine-cache: the first start builds, the second reuses (no rebuild), and a changed option or model file
// builds a new engine.
import { appendFileSync, cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { applyEngineFlags } from '../../src/build/engine-flags.js';
import { engineDefaults, type EngineConfig } from '../../src/config.js';
import { storiesDir, tempDir } from './engine-helpers.js';

async function start(c: Partial<EngineConfig>): Promise<{ config: EngineConfig; log: string[] }> {
  const log: string[] = [];
  const config = await applyEngineFlags(
    { ...engineDefaults(), device: 'cpu', threads: 2, ...c },
    { log: (l) => log.push(l) },
  );
  return { config, log };
}

const createdAt = (dir: string) =>
  (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { createdAt: string }).createdAt;

test('built on first start, reused after, rebuilt for another option or a changed model file', async () => {
  const work = tempDir();
  const model = join(work, 'stories');
  cpSync(storiesDir, model, { recursive: true });
  const cache = join(work, 'cache');

  const first = await start({ model, engineCache: cache });
  expect(first.log).toEqual([`kvserve: engine cache: building ${first.config.engine}`]);
  expect(first.config.model).toBe(first.config.engine);
  expect(first.config.tokenizer).toBe(first.config.engine);
  const built = createdAt(first.config.engine);

  const second = await start({ model, engineCache: cache });
  expect(second.log).toEqual([`kvserve: engine cache: using ${first.config.engine}`]);
  expect(second.config.engine).toBe(first.config.engine);
  expect(createdAt(second.config.engine)).toBe(built);

  const fewerSeqs = await start({ model, engineCache: cache, maxNumSeqs: 8 });
  expect(fewerSeqs.log[0]).toMatch(/engine cache: building /);
  expect(fewerSeqs.config.engine).not.toBe(first.config.engine);
  expect(fewerSeqs.config.maxNumSeqs).toBe(8);

  const bf16 = await start({ model, engineCache: cache, dtype: 'bfloat16' });
  expect(bf16.log[0]).toMatch(/engine cache: building /);

  appendFileSync(join(model, 'tokenizer_config.json'), '\n');
  const changed = await start({ model, engineCache: cache });
  expect(changed.log[0]).toMatch(/engine cache: building /);
  // Rewritten in place with the same size: the digest memo must not hide it.
  const text = readFileSync(join(model, 'tokenizer_config.json'), 'utf8');
  writeFileSync(join(model, 'tokenizer_config.json'), text.replace(/"/, "'"));
  const rewritten = await start({ model, engineCache: cache });
  expect(rewritten.log[0]).toMatch(/engine cache: building /);
  expect((await start({ model, engineCache: cache })).log[0]).toBe(
    `kvserve: engine cache: using ${rewritten.config.engine}`,
  );
  expect(new Set([first, fewerSeqs, bf16, changed, rewritten].map((s) => s.config.engine)).size).toBe(5);
  expect(readdirSync(cache).filter((n) => !n.startsWith('.'))).toHaveLength(5);
});

test("--engine takes the engine's profile for limits left at their defaults and refuses larger ones", async () => {
  const work = tempDir();
  const { config } = await start({
    model: storiesDir,
    engineCache: join(work, 'cache'),
    maxNumSeqs: 8,
    maxModelLen: 128,
  });
  const served = await start({ engine: config.engine });
  expect(served.config.maxNumSeqs).toBe(8);
  expect(served.config.maxModelLen).toBe(128);
  expect(served.config.maxNumBatchedTokens).toBe(2048);
  await expect(start({ engine: config.engine, maxNumSeqs: 16 })).rejects.toThrow(
    new RegExp(
      `^--max-num-seqs 16 exceeds engine ${config.engine}'s profile \\(8\\): rebuild with kvserve build --model `,
    ),
  );
  expect((await start({ engine: config.engine, maxNumSeqs: 4 })).config.maxNumSeqs).toBe(4);
  await expect(start({ engine: config.engine, dtype: 'bfloat16' })).rejects.toThrow(
    /holds float32 weights; --dtype bfloat16/,
  );
  await expect(start({ engine: config.engine, model: '/somewhere' })).rejects.toThrow(
    /--engine and --model exclude each other/,
  );
});
