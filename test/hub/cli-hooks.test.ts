// The hooks of the commands, in-process with the Hub settings in the environment: serve's and generate's
// resolveHubModels (--model / --tokenizer org/name, --load-format dummy, the served model id), and
// `kvserve bench --tokenizer org/name` — the tokenizer's files and no weights, exact prompt lengths with it.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { parseBenchArgs } from '../../src/bench/options.js';
import { serverDefaults } from '../../src/config.js';
import { resolveHubModels } from '../../src/hub/resolve-model.js';
import { prepareBench } from '../../src/bench/run.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { startFakeHub, type FakeHub } from './fake-hub.js';

const stories = resolve(__dirname, '..', '..', 'models', 'stories260K');
const MAIN = '7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b';
const V2 = '7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c';
let hub: FakeHub;
const cache = mkdtempSync(join(tmpdir(), 'kvserve-hfcache-'));
const saved = { ...process.env };

beforeAll(async () => {
  hub = await startFakeHub({ 'kvserve-test/stories260K': { dir: stories, refs: { main: MAIN, v2: V2 } } });
  // Each test file runs in its own process (vitest's forks pool): this environment is this file's alone.
  Object.assign(process.env, { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_HUB_DISABLE_PROGRESS_BARS: '1' });
  for (const k of ['HF_TOKEN', 'HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE']) delete process.env[k];
});
afterAll(async () => {
  process.env = saved;
  await hub.close();
});

test('--tokenizer org/name --tokenizer-revision v2: tokenizer files only, exact prompt lengths', async () => {
  const o = parseBenchArgs([
    '--tokenizer',
    'kvserve-test/stories260K',
    '--tokenizer-revision',
    'v2',
    '--model',
    'm',
    '--input-len',
    '24',
    '--num-prompts',
    '4',
  ]);
  const setup = await prepareBench(o);
  const snapshot = join(cache, 'models--kvserve-test--stories260K', 'snapshots', V2);
  expect(readdirSync(snapshot).sort()).toEqual(['config.json', 'tokenizer.json', 'tokenizer_config.json']);
  expect(hub.requests.some((r) => r.path.endsWith('.safetensors') || r.path.startsWith('/cdn/'))).toBe(false);
  const local = await TextTokenizer.load(stories);
  expect(setup.dataset.exactLengths).toBe(true);
  for (const r of setup.dataset.requests) expect(local.encode(r.prompt, false)).toHaveLength(24);
});

test('resolveHubModels: Hub ids become snapshot folders, the served model id the repo id; local paths untouched', async () => {
  const snapshot = join(cache, 'models--kvserve-test--stories260K', 'snapshots', MAIN);
  const c = await resolveHubModels(
    { ...serverDefaults(), model: 'kvserve-test/stories260K', tokenizer: 'kvserve-test/stories260K' },
    { progress: false },
  );
  expect(c).toMatchObject({
    model: snapshot,
    tokenizer: snapshot,
    servedModelName: 'kvserve-test/stories260K',
    revision: 'main',
  });
  expect(readdirSync(snapshot)).toContain('model.safetensors');

  const named = await resolveHubModels(
    { ...serverDefaults(), model: 'kvserve-test/stories260K', servedModelName: 'demo', tokenizer: stories },
    { progress: false },
  );
  expect(named).toMatchObject({ model: snapshot, tokenizer: stories, servedModelName: 'demo' });

  const from = hub.requests.length;
  const local = { ...serverDefaults(), model: 'models/stories260K', tokenizer: '' };
  expect(await resolveHubModels(local, { progress: false })).toEqual(local);
  expect(hub.requests.length).toBe(from);
});

test('resolveHubModels with --load-format dummy: config and tokenizer only', async () => {
  const c = await resolveHubModels(
    { ...serverDefaults(), model: 'kvserve-test/stories260K', revision: 'v2', loadFormat: 'dummy' },
    { progress: false },
  );
  expect(c.model).toBe(join(cache, 'models--kvserve-test--stories260K', 'snapshots', V2));
  expect(readdirSync(c.model)).not.toContain('model.safetensors');
  expect(readdirSync(c.model)).toContain('config.json');
});
