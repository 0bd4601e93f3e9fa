// `kvserve build --model org/name` through a fake Hub on 127.0.0.1: the manifest names the repo id, the
// revision and the commit it resolved to, and hashes the same content as the local folder.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { readManifest } from '../../src/build/manifest.js';
import { hashModelFolder } from '../../src/build/model-hash.js';
import { startFakeHub, type FakeHub } from '../hub/fake-hub.js';
import { repo, storiesDir, tempDir } from './engine-helpers.js';

const run = promisify(execFile);
const MAIN = '7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e';
let hub: FakeHub;
beforeAll(async () => {
  hub = await startFakeHub({ 'kvserve-test/stories260K': { dir: storiesDir, refs: { main: MAIN } } });
});
afterAll(() => hub.close());

test('an engine built from org/name records the repo id, revision and commit', async () => {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HF_ENDPOINT: hub.url,
    HF_HOME: mkdtempSync(join(tmpdir(), 'kvserve-hfhome-')),
  };
  for (const k of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE'])
    delete env[k];
  const out = join(tempDir(), 'engine');
  await run(
    process.execPath,
    ['--import', 'tsx', 'src/cli.ts', 'build', '--model', 'kvserve-test/stories260K', '--out', out, '--quiet'],
    { cwd: repo, env, timeout: 60_000 },
  );
  const m = readManifest(out);
  expect(m.source.model).toBe('kvserve-test/stories260K');
  expect(m.source.revision).toBe('main');
  expect(m.source.commit).toBe(MAIN);
  // The files fetched for a model (not the README or expected.json), each as in the local folder.
  const local = new Map((await hashModelFolder(storiesDir)).files.map((f) => [f.path, f]));
  expect(m.source.files.map((f) => f.path)).toEqual([
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  for (const f of m.source.files) expect(f).toEqual(local.get(f.path));
  expect(m.rebuild.slice(0, 4)).toEqual(['--model', 'kvserve-test/stories260K', '--revision', 'main']);
});
