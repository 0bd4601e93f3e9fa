// Every way getting a model from the Hub fails gives one line saying what to do: gated or private (401/403),
// a missing repository or revision (404), no network, offline with nothing (or half a download) cached, a repo
// without safetensors; and which arguments are Hub ids at all.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { HubSettings } from '../../src/hub/hub-settings.js';
import { isHubModelId, resolveModelDir } from '../../src/hub/resolve-model.js';
import { closedPort, startFakeHub, type FakeHub } from './fake-hub.js';

const repo = resolve(__dirname, '..', '..');
const stories = join(repo, 'models', 'stories260K');
const MAIN = '5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e';

let hub: FakeHub;
beforeAll(async () => {
  const binOnly = mkdtempSync(join(tmpdir(), 'kvserve-binonly-'));
  for (const f of ['config.json', 'tokenizer.json']) writeFileSync(join(binOnly, f), readFileSync(join(stories, f)));
  hub = await startFakeHub({
    'kvserve-test/stories260K': { dir: stories, refs: { main: MAIN } },
    'kvserve-test/gated': { dir: stories, refs: { main: MAIN }, gatedToken: 'hf_granted' },
    'kvserve-test/private': { dir: stories, refs: { main: MAIN }, privateToken: 'hf_mine' },
    'kvserve-test/bin-only': { dir: binOnly, refs: { main: MAIN }, extra: { 'pytorch_model.bin': Buffer.alloc(100) } },
  });
});
afterAll(() => hub.close());

function settings(over: Partial<HubSettings> = {}): HubSettings {
  return {
    endpoint: hub.url,
    token: undefined,
    offline: false,
    cacheDir: mkdtempSync(join(tmpdir(), 'kvserve-hf-')),
    noProgress: false,
    ...over,
  };
}

describe('refusals', () => {
  test('gated without a token: 401, set HF_TOKEN and accept the licence', async () => {
    await expect(resolveModelDir('kvserve-test/gated', { settings: settings() })).rejects.toThrow(
      `kvserve-test/gated is gated or private (HTTP 401, no HF_TOKEN set): set HF_TOKEN and accept the model's licence on the Hub at ${hub.url}/kvserve-test/gated`,
    );
  });

  test('gated with a token that has no access: 403, same advice', async () => {
    await expect(resolveModelDir('kvserve-test/gated', { settings: settings({ token: 'hf_other' }) })).rejects.toThrow(
      /kvserve-test\/gated is gated or private \(HTTP 403, HF_TOKEN was sent\): set HF_TOKEN and accept the model's licence/,
    );
  });

  test('gated with the right token: downloads, the token sent to the Hub as a bearer', async () => {
    const from = hub.requests.length;
    const dir = await resolveModelDir('kvserve-test/gated', { settings: settings({ token: 'hf_granted' }) });
    expect(readFileSync(join(dir, 'model.safetensors')).equals(readFileSync(join(stories, 'model.safetensors')))).toBe(
      true,
    );
    const resolves = hub.requests.slice(from).filter((r) => r.path.includes('/resolve/'));
    expect(resolves.length).toBeGreaterThan(0);
    expect(resolves.every((r) => r.authorization === 'Bearer hf_granted')).toBe(true);
  });

  test('private without a token: the Hub says 401 not found, and the message gives both readings', async () => {
    await expect(resolveModelDir('kvserve-test/private', { settings: settings() })).rejects.toThrow(
      `model kvserve-test/private not found on ${hub.url}, or it is private or gated (HTTP 401, no HF_TOKEN set): ` +
        `set HF_TOKEN and accept the model's licence on the Hub at ${hub.url}/kvserve-test/private`,
    );
    const dir = await resolveModelDir('kvserve-test/private', { settings: settings({ token: 'hf_mine' }) });
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe(readFileSync(join(stories, 'config.json'), 'utf8'));
  });

  test('a missing repository: 404, named', async () => {
    await expect(resolveModelDir('kvserve-test/nope', { settings: settings() })).rejects.toThrow(
      `model kvserve-test/nope not found on ${hub.url} (no local folder of that name either)`,
    );
  });

  test('a missing revision: 404, the revision named', async () => {
    await expect(resolveModelDir('kvserve-test/stories260K', { settings: settings(), revision: 'v9' })).rejects.toThrow(
      `revision "v9" not found in kvserve-test/stories260K on ${hub.url}`,
    );
  });

  test('a revision that is no ref name is refused before any request', async () => {
    const from = hub.requests.length;
    await expect(
      resolveModelDir('kvserve-test/stories260K', { settings: settings(), revision: '../../etc' }),
    ).rejects.toThrow(/--revision "..\/..\/etc" is not a branch/);
    expect(hub.requests.length).toBe(from);
  });

  test('a repo with .bin weights only: says kvserve loads safetensors', async () => {
    await expect(resolveModelDir('kvserve-test/bin-only', { settings: settings() })).rejects.toThrow(
      /kvserve-test\/bin-only has no model\.safetensors or model\.safetensors\.index\.json at its top level \(it has pytorch_model\.bin; kvserve loads Hugging Face safetensors only\)/,
    );
  });
});

describe('no network and offline', () => {
  test('an endpoint nobody listens on: names it and says HF_HUB_OFFLINE=1 uses the cache', async () => {
    const port = await closedPort();
    const s = settings({ endpoint: `http://127.0.0.1:${port}` });
    await expect(resolveModelDir('kvserve-test/stories260K', { settings: s })).rejects.toThrow(
      `cannot reach the Hugging Face Hub at http://127.0.0.1:${port} (ECONNREFUSED) to fetch kvserve-test/stories260K; ` +
        `set HF_HUB_OFFLINE=1 to load it from the cache (${s.cacheDir}), or HF_ENDPOINT for a mirror`,
    );
  });

  test('offline with an empty cache: nothing is fetched, and the message says so', async () => {
    const s = settings({ offline: true });
    const from = hub.requests.length;
    await expect(resolveModelDir('kvserve-test/stories260K', { settings: s })).rejects.toThrow(
      `kvserve-test/stories260K is not in the Hugging Face cache at ${s.cacheDir}, and HF_HUB_OFFLINE=1 forbids downloading it`,
    );
    expect(hub.requests.length).toBe(from);
  });

  test('offline with a filled cache: the snapshot, without a request', async () => {
    const s = settings();
    const online = await resolveModelDir('kvserve-test/stories260K', { settings: s });
    const from = hub.requests.length;
    expect(await resolveModelDir('kvserve-test/stories260K', { settings: { ...s, offline: true } })).toBe(online);
    expect(hub.requests.length).toBe(from);
  });

  test('offline with half a download cached: the missing file named', async () => {
    const s = settings();
    hub.cut = { file: 'model.safetensors', atByte: 500_000, times: Infinity };
    await expect(resolveModelDir('kvserve-test/stories260K', { settings: s })).rejects.toThrow(
      /cut at \d+ of 1044984 bytes/,
    );
    hub.cut = undefined;
    await expect(resolveModelDir('kvserve-test/stories260K', { settings: { ...s, offline: true } })).rejects.toThrow(
      /the cached snapshot .*snapshots\/5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e of kvserve-test\/stories260K lacks model\.safetensors \(an interrupted download\?\); unset HF_HUB_OFFLINE to finish it/,
    );
  });

  test('a cache laid out by hand the way huggingface_hub writes it is used offline', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'kvserve-hf-py-'));
    const folder = join(cacheDir, 'models--kvserve-test--stories260K');
    const commit = 'c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff';
    mkdirSync(join(folder, 'blobs'), { recursive: true });
    mkdirSync(join(folder, 'refs'));
    mkdirSync(join(folder, 'snapshots', commit), { recursive: true });
    writeFileSync(join(folder, 'refs', 'main'), commit);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
      const blob = f.endsWith('.safetensors')
        ? execFileSync('sha256sum', [join(stories, f)], { encoding: 'utf8' }).split(' ')[0]!
        : execFileSync('git', ['hash-object', join(stories, f)], { encoding: 'utf8' }).trim();
      writeFileSync(join(folder, 'blobs', blob), readFileSync(join(stories, f)));
      symlinkSync(`../../blobs/${blob}`, join(folder, 'snapshots', commit, f));
    }
    const s = settings({ cacheDir, offline: true });
    expect(await resolveModelDir('kvserve-test/stories260K', { settings: s })).toBe(join(folder, 'snapshots', commit));
    // Online, the Hub's main is another commit: fetched beside it, the shared blobs not downloaded again.
    const from = hub.requests.length;
    const dir = await resolveModelDir('kvserve-test/stories260K', { settings: { ...s, offline: false } });
    expect(dir).toBe(join(folder, 'snapshots', MAIN));
    expect(hub.requests.slice(from).filter((r) => r.path.includes('/resolve/'))).toEqual([]);
  });
});

describe('what is a Hub id', () => {
  test.each([
    ['kvserve-test/stories260K', true],
    ['meta-llama/Llama-3.2-1B-Instruct', true],
    ['models/stories260K', false], // exists under the repository root (vitest's working directory)
    ['/abs/org/name', false],
    ['./org/name', false],
    ['org/name/extra', false],
    ['org/config.json', false],
    ['org--x/name', false],
    ['org/na..me', false],
    ['stories260K', false],
  ])('%s → %s', (arg, hub) => {
    expect(isHubModelId(arg)).toBe(hub);
  });
});
