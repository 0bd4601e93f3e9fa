// `kvserve generate` / `serve` / `bench` with --model org/name, as a user runs them: real processes whose
// HF_ENDPOINT is a fake Hub on 127.0.0.1. The greedy text through the Hub is transformers' (expected.json), as
// from the local folder; again offline with the Hub gone; a local folder never touches the network.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { killChildren, spawnServe } from '../server/helpers/child-server.js';
import { closedPort, startFakeHub, type FakeHub } from './fake-hub.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';

const repo = resolve(__dirname, '..', '..');
const stories = join(repo, 'models', 'stories260K');
const expected = JSON.parse(readFileSync(join(stories, 'expected.json'), 'utf8')) as Array<{
  prompt: string;
  greedy_ids: number[];
  greedy_text: string;
}>;
const e0 = expected[0]!;
const MAIN = '9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d';
afterAll(killChildren);

/** The environment of a user with a fresh cache and no login; `over` sets (or, as undefined, unsets) variables. */
function hfEnv(over: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, KVSERVE_API_KEY: '' };
  for (const k of [
    'HF_TOKEN',
    'HUGGING_FACE_HUB_TOKEN',
    'HF_HUB_OFFLINE',
    'TRANSFORMERS_OFFLINE',
    'HF_HUB_DISABLE_PROGRESS_BARS',
    'HF_HUB_CACHE',
    'HUGGINGFACE_HUB_CACHE',
  ])
    delete env[k];
  env.HF_HOME = mkdtempSync(join(tmpdir(), 'kvserve-hfhome-')); // no token file, and the cache under it
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** stderr's lines without npm's own warnings. */
const lines = (stderr: string) => stderr.split('\n').filter((l) => l.trim() && !l.startsWith('npm warn'));

const greedy = ['--prompt', e0.prompt, '--temperature', '0', '--max-tokens', '80', '--ignore-eos', '--device', 'cpu'];

let hub: FakeHub;
beforeAll(async () => {
  hub = await startFakeHub({
    'kvserve-test/stories260K': { dir: stories, refs: { main: MAIN } },
    'kvserve-test/gated': { dir: stories, refs: { main: MAIN }, gatedToken: 'hf_granted' },
  });
});
afterAll(() => hub.close());

describe('kvserve generate --model org/name', () => {
  test("through the Hub: transformers' greedy text, progress on stderr; then offline with the Hub stopped, the same", async () => {
    const cache = mkdtempSync(join(tmpdir(), 'kvserve-hfcache-'));
    const online = await kvserve(
      ['generate', '--model', 'kvserve-test/stories260K', ...greedy],
      hfEnv({ HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache }),
    );
    expect(online.code, online.stderr).toBe(0);
    expect(online.stdout.trimStart().replace(/\n$/, '')).toBe(e0.greedy_text);
    expect(online.stderr).toMatch(/downloaded kvserve-test\/stories260K: 1\.0 MiB \(100%\)/);
    expect(online.stderr).toMatch(/loading: .*100%/);

    // A fake Hub that is gone: a closed port, and HF_HUB_OFFLINE=1 never tries it.
    const offline = await kvserve(
      ['generate', '--model', 'kvserve-test/stories260K', ...greedy, '--json'],
      hfEnv({ HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}`, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }),
    );
    expect(offline.code, offline.stderr).toBe(0);
    const out = JSON.parse(offline.stdout) as { output_ids: number[]; text: string };
    expect(out.output_ids).toEqual(e0.greedy_ids);
    expect(out.text.trimStart()).toBe(e0.greedy_text);
  });

  test('a local folder that looks like org/name is used as it is: no request reaches the Hub', async () => {
    const from = hub.requests.length;
    const r = await kvserve(
      ['generate', '--model', 'models/stories260K', ...greedy, '--json'],
      hfEnv({ HF_ENDPOINT: hub.url }),
    );
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { output_ids: number[] }).output_ids).toEqual(e0.greedy_ids);
    expect(hub.requests.length).toBe(from);
  });

  test('HF_TOKEN is sent: a gated model downloads with it and is one clear line without it', async () => {
    const ok = await kvserve(
      ['generate', '--model', 'kvserve-test/gated', ...greedy, '--json'],
      hfEnv({ HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_granted' }),
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as { output_ids: number[] }).output_ids).toEqual(e0.greedy_ids);

    const refused = await kvserve(
      ['generate', '--model', 'kvserve-test/gated', ...greedy],
      hfEnv({ HF_ENDPOINT: hub.url }),
    );
    expect(refused.code).toBe(1);
    expect(lines(refused.stderr)).toEqual([
      `kvserve: kvserve-test/gated is gated or private (HTTP 401, no HF_TOKEN set): set HF_TOKEN and accept the model's licence on the Hub at ${hub.url}/kvserve-test/gated`,
    ]);
  });

  test.each([
    [
      'no network',
      async () => ({ HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}` }),
      /^kvserve: cannot reach the Hugging Face Hub at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\) to fetch kvserve-test\/stories260K; set HF_HUB_OFFLINE=1/,
    ],
    [
      'offline, nothing cached',
      async () => ({ HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: '1' }),
      /^kvserve: kvserve-test\/stories260K is not in the Hugging Face cache at .*, and HF_HUB_OFFLINE=1 forbids downloading it/,
    ],
    [
      'a missing revision',
      async () => ({ HF_ENDPOINT: hub.url }),
      /^kvserve: revision "v9" not found in kvserve-test\/stories260K/,
    ],
    [
      'a token that is not one',
      async () => ({ HF_ENDPOINT: hub.url, HF_TOKEN: 'secret' }),
      /^kvserve: HF_TOKEN must be a Hugging Face access token \(it starts with hf_\)$/,
    ],
  ])('%s: one line, exit 1', async (name, env, message) => {
    const args = [
      'generate',
      '--model',
      'kvserve-test/stories260K',
      ...greedy,
      ...(name === 'a missing revision' ? ['--revision', 'v9'] : []),
    ];
    const r = await kvserve(args, hfEnv(await env()));
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(lines(r.stderr)[0]).toMatch(message);
  });
});

describe('kvserve serve and bench with org/name', () => {
  test("serve: the model id is the repo id, the completion transformers'", async () => {
    const s = spawnServe(['--model', 'kvserve-test/stories260K'], hfEnv({ HF_ENDPOINT: hub.url }));
    const url = await s.url;
    for (let i = 0; i < 300 && (await fetch(`${url}/health`)).status !== 200; i++)
      await new Promise((r) => setTimeout(r, 50));
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(['kvserve-test/stories260K']);
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'kvserve-test/stories260K', prompt: e0.prompt, max_tokens: 80, temperature: 0 }),
    });
    expect(((await res.json()) as { choices: Array<{ text: string }> }).choices[0]!.text).toBe(e0.greedy_text);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    // The download is in the server's log, as records: its start, then its end with the bytes.
    const repo = 'kvserve-test/stories260K';
    const download = s.records().filter((r) => r.repo === repo);
    expect(download[0]).toMatchObject({ msg: `downloading ${repo}`, files: expect.any(Number) });
    expect(download[0]!.totalBytes).toBeGreaterThan(1_000_000); // the weights are 1 MiB
    expect(download.at(-1)).toMatchObject({ msg: `downloaded ${repo}`, totalBytes: download[0]!.totalBytes });
    expect(s.stderr()).toBe('');
  });
});
