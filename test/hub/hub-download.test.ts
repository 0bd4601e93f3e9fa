// Downloads from a fake Hub (test/hub/fake-hub.ts) into a fresh cache: the layout is Python huggingface_hub's to
// the byte (blob names checked with `git hash-object` and `sha256sum`, not with our own hashing), only the files
// a model needs are fetched, a cut download resumes with a Range request, and a cached model is reused.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
  truncateSync,
  copyFileSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { resolveModelDir } from '../../src/hub/resolve-model.js';
import type { HubSettings } from '../../src/hub/hub-settings.js';
import { logDownloadProgress, stderrDownloadProgress, type DownloadProgress } from '../../src/hub/download-progress.js';
import { startFakeHub, type FakeHub } from './fake-hub.js';

const repo = resolve(__dirname, '..', '..');
const stories = join(repo, 'models', 'stories260K');
const sharded = join(repo, 'test', 'fixtures', 'llama-bf16-sharded');
const MAIN = '1f3c0d2e4b5a69788796a5b4c3d2e1f001122334';
const V1 = 'aa11bb22cc33dd44ee55ff6600778899aabbccdd';
const SHARDED = '0123456789abcdef0123456789abcdef01234567';

let hub: FakeHub;
beforeAll(async () => {
  hub = await startFakeHub({
    'kvserve-test/stories260K': {
      dir: stories,
      refs: { main: MAIN, v1: V1 },
      // What real repos carry beside the safetensors, none of which kvserve reads.
      extra: {
        'pytorch_model.bin': Buffer.alloc(3000, 1),
        'model.gguf': Buffer.alloc(2000, 2),
        'onnx/model.onnx': Buffer.alloc(1000, 3),
        'special_tokens_map.json': Buffer.from('{"bos_token": "<s>", "eos_token": "</s>"}'),
      },
    },
    'kvserve-test/sharded': {
      dir: sharded,
      refs: { main: SHARDED },
      extra: { 'consolidated.safetensors': Buffer.alloc(5000, 4) },
    },
  });
});
afterAll(() => hub.close());
beforeEach(() => {
  hub.cut = undefined;
  hub.ignoreRange = false;
});

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

/** Paths fetched through resolve (the CDN requests are their redirects). */
function resolved(from: number): string[] {
  return hub.requests
    .slice(from)
    .filter((r) => r.path.includes('/resolve/'))
    .map((r) => r.path.split('/').pop()!);
}

function hashObject(file: string): string {
  return execFileSync('git', ['hash-object', file], { encoding: 'utf8' }).trim();
}
function sha256sum(file: string): string {
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0]!;
}

const recording = (): DownloadProgress & { events: string[] } => {
  const events: string[] = [];
  return {
    events,
    start: (l, n, t) => events.push(`start ${l} ${n} ${t}`),
    file: (p, s, r) => events.push(`file ${p} ${s} ${r}`),
    bytes: () => undefined,
    finish: () => events.push('finish'),
  };
};

describe("the cache layout is huggingface_hub's", () => {
  test('blobs named by sha256 (LFS) and git blob sha1, snapshots as relative symlinks, refs/main holding the commit', async () => {
    const s = settings();
    const dir = await resolveModelDir('kvserve-test/stories260K', { settings: s });
    const folder = join(s.cacheDir, 'models--kvserve-test--stories260K');
    expect(dir).toBe(join(folder, 'snapshots', MAIN));
    expect(readFileSync(join(folder, 'refs', 'main'), 'utf8')).toBe(MAIN);
    expect(readdirSync(join(folder, 'refs'))).toEqual(['main']);

    const expectedBlobs: Record<string, string> = {
      'config.json': hashObject(join(stories, 'config.json')),
      'tokenizer.json': hashObject(join(stories, 'tokenizer.json')),
      'tokenizer_config.json': hashObject(join(stories, 'tokenizer_config.json')),
      'model.safetensors': sha256sum(join(stories, 'model.safetensors')),
    };
    const special = join(tmpdir(), `special-${process.pid}.json`);
    writeFileSync(special, '{"bos_token": "<s>", "eos_token": "</s>"}');
    expectedBlobs['special_tokens_map.json'] = hashObject(special);

    // Exactly the files a model needs: no README, expected.json, .bin, .gguf or onnx/.
    expect(readdirSync(dir).sort()).toEqual(Object.keys(expectedBlobs).sort());
    for (const [file, blob] of Object.entries(expectedBlobs)) {
      const link = join(dir, file);
      expect(lstatSync(link).isSymbolicLink(), file).toBe(true);
      expect(readlinkSync(link), file).toBe(`../../blobs/${blob}`);
      const original = file === 'special_tokens_map.json' ? special : join(stories, file);
      expect(readFileSync(link).equals(readFileSync(original)), file).toBe(true);
    }
    expect(readdirSync(join(folder, 'blobs')).sort()).toEqual(Object.values(expectedBlobs).sort());
    expect(hub.requests.some((r) => /\.(bin|gguf|onnx)$/.test(r.path))).toBe(false);
  });

  test('a second revision shares the blobs: refs/v1, its own snapshot, no bytes fetched twice', async () => {
    const s = settings();
    await resolveModelDir('kvserve-test/stories260K', { settings: s });
    const from = hub.requests.length;
    const dir = await resolveModelDir('kvserve-test/stories260K', { settings: s, revision: 'v1' });
    const folder = join(s.cacheDir, 'models--kvserve-test--stories260K');
    expect(dir).toBe(join(folder, 'snapshots', V1));
    expect(readFileSync(join(folder, 'refs', 'v1'), 'utf8')).toBe(V1);
    expect(readlinkSync(join(dir, 'model.safetensors'))).toBe(
      `../../blobs/${sha256sum(join(stories, 'model.safetensors'))}`,
    );
    expect(resolved(from)).toEqual([]);
  });

  test('a filled cache is used without downloading again; a commit revision needs no request at all', async () => {
    const s = settings();
    await resolveModelDir('kvserve-test/stories260K', { settings: s });
    let from = hub.requests.length;
    await resolveModelDir('kvserve-test/stories260K', { settings: s });
    expect(resolved(from)).toEqual([]);
    from = hub.requests.length;
    expect(await resolveModelDir('kvserve-test/stories260K', { settings: s, revision: MAIN })).toMatch(
      new RegExp(`snapshots/${MAIN}$`),
    );
    expect(hub.requests.length).toBe(from);
  });

  test('a cache with the blobs but a missing link (as another tool may leave it) is relinked, not refetched', async () => {
    const s = settings();
    const dir = await resolveModelDir('kvserve-test/stories260K', { settings: s });
    execFileSync('rm', [join(dir, 'model.safetensors')]);
    const from = hub.requests.length;
    await resolveModelDir('kvserve-test/stories260K', { settings: s });
    expect(hub.requests.slice(from).filter((r) => r.path.startsWith('/cdn/'))).toEqual([]);
    expect(readFileSync(join(dir, 'model.safetensors')).equals(readFileSync(join(stories, 'model.safetensors')))).toBe(
      true,
    );
  });

  test('for --load-format dummy (set "config"): the config and tokenizer, no weights', async () => {
    const from = hub.requests.length;
    const dir = await resolveModelDir('kvserve-test/sharded', { settings: settings(), set: 'config' });
    expect(readdirSync(dir).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    expect(hub.requests.slice(from).some((r) => r.path.includes('safetensors') || r.path.startsWith('/cdn/'))).toBe(
      false,
    );
  });

  test('sharded weights: the index and the shards it names, not consolidated.safetensors nor the .bin references', async () => {
    const s = settings();
    const dir = await resolveModelDir('kvserve-test/sharded', { settings: s });
    expect(readdirSync(dir).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    for (const f of readdirSync(dir))
      expect(readFileSync(join(dir, f)).equals(readFileSync(join(sharded, f))), f).toBe(true);
  });
});

describe('a cut download resumes with a Range request', () => {
  const weights = readFileSync(join(stories, 'model.safetensors'));
  const half = Math.floor(weights.length / 2);

  test('within the run: the connection drops at half, the retry asks for bytes=<half>- and the blob is right', async () => {
    const s = settings();
    hub.cut = { file: 'model.safetensors', atByte: half, times: 1 };
    const from = hub.requests.length;
    const dir = await resolveModelDir('kvserve-test/stories260K', { settings: s });
    const cdn = hub.requests.slice(from).filter((r) => r.path.startsWith('/cdn/') && r.range !== 'bytes=0-0');
    expect(cdn).toHaveLength(2);
    expect(cdn[0]!.range).toBeUndefined();
    // The retry starts where the part on disk ends: at the cut, less the last read the dropped socket lost.
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(cdn[1]!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(half / 2);
    expect(resumedAt).toBeLessThanOrEqual(half);
    expect(readFileSync(join(dir, 'model.safetensors')).equals(weights)).toBe(true);
  });

  test('across runs: a run that keeps being cut fails leaving the .incomplete part; the next run resumes it', async () => {
    const s = settings();
    const blobs = join(s.cacheDir, 'models--kvserve-test--stories260K', 'blobs');
    const part = join(blobs, `${sha256sum(join(stories, 'model.safetensors'))}.incomplete`);
    hub.cut = { file: 'model.safetensors', atByte: half, times: Infinity };
    const cut = await resolveModelDir('kvserve-test/stories260K', { settings: s }).catch((e: Error) => e.message);
    const kept = readFileSync(part);
    expect(cut).toBe(
      `download of kvserve-test/stories260K/model.safetensors cut at ${kept.length} of ${weights.length} bytes; run again to resume from ${part}`,
    );
    expect(kept.length).toBeGreaterThan(half / 2);
    expect(kept.length).toBeLessThanOrEqual(half);
    expect(kept.equals(weights.subarray(0, kept.length))).toBe(true);

    hub.cut = undefined;
    const from = hub.requests.length;
    const progress = recording();
    const dir = await resolveModelDir('kvserve-test/stories260K', { settings: s, sink: progress });
    const cdn = hub.requests.slice(from).filter((r) => r.path.startsWith('/cdn/') && r.range !== 'bytes=0-0');
    expect(cdn.map((r) => r.range)).toEqual([`bytes=${kept.length}-`]);
    expect(progress.events).toContain(`file model.safetensors ${weights.length} ${kept.length}`);
    expect(readFileSync(join(dir, 'model.safetensors')).equals(weights)).toBe(true);
    expect(existsSync(part)).toBe(false);
  });

  test('a server that answers the Range request with the whole file: the part is started over, not appended to', async () => {
    const s = settings();
    const blobs = join(s.cacheDir, 'models--kvserve-test--stories260K', 'blobs');
    execFileSync('mkdir', ['-p', blobs]);
    writeFileSync(
      join(blobs, `${sha256sum(join(stories, 'model.safetensors'))}.incomplete`),
      weights.subarray(0, half),
    );
    hub.ignoreRange = true;
    const from = hub.requests.length;
    const dir = await resolveModelDir('kvserve-test/stories260K', { settings: s });
    expect(
      hub.requests
        .slice(from)
        .filter((r) => r.path.startsWith('/cdn/') && r.range !== 'bytes=0-0')
        .map((r) => r.range),
    ).toEqual([`bytes=${half}-`]);
    expect(readFileSync(join(dir, 'model.safetensors')).equals(weights)).toBe(true);
  });

  test('a part whose bytes are wrong is caught by the sha256 check and removed, not installed', async () => {
    const s = settings();
    const blobs = join(s.cacheDir, 'models--kvserve-test--stories260K', 'blobs');
    execFileSync('mkdir', ['-p', blobs]);
    const part = join(blobs, `${sha256sum(join(stories, 'model.safetensors'))}.incomplete`);
    copyFileSync(join(stories, 'tokenizer.json'), part); // not the first bytes of the weights
    truncateSync(part, 1000);
    await expect(resolveModelDir('kvserve-test/stories260K', { settings: s })).rejects.toThrow(
      /do not match the Hub's sha256/,
    );
    expect(existsSync(part)).toBe(false);
    const dir = await resolveModelDir('kvserve-test/stories260K', { settings: s });
    expect(readFileSync(join(dir, 'model.safetensors')).equals(weights)).toBe(true);
  });
});

describe('progress on stderr', () => {
  test('plain lines with bytes when stderr is not a terminal; one line rewritten in place when it is', async () => {
    for (const isTTY of [false, true]) {
      let text = '';
      const out = { isTTY, write: (s: string) => (text += s) };
      await resolveModelDir('kvserve-test/stories260K', { settings: settings(), sink: stderrDownloadProgress(out) });
      if (!isTTY) {
        expect(text).toMatch(/^downloading kvserve-test\/stories260K: 5 files, 1\.0 MiB\n/);
        expect(text).toMatch(/downloading kvserve-test\/stories260K: model\.safetensors \(1020\.5 KiB\)\n/);
        // At most one line per tenth of the total, rising.
        const pcts = [
          ...text.matchAll(/downloading kvserve-test\/stories260K: [\d.]+ KiB \/ 1\.0 MiB \((\d+)%\)\n/g),
        ].map((m) => Number(m[1]));
        expect(pcts.length).toBeGreaterThanOrEqual(3);
        expect(pcts.length).toBeLessThanOrEqual(9);
        expect(new Set(pcts.map((p) => Math.floor(p / 10))).size).toBe(pcts.length);
        expect([...pcts].sort((a, b) => a - b)).toEqual(pcts);
        expect(text).toMatch(/downloaded kvserve-test\/stories260K: 1\.0 MiB \(100%\) in [\d.]+ s/);
        expect(text).not.toContain('\r');
      } else {
        expect(text).toContain('\r\x1b[Kdownloading kvserve-test/stories260K: ');
        expect(text.trimEnd().split('\n')).toHaveLength(1);
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal's erase-line escape is what this checks
        expect(text).toMatch(/\r\x1b\[Kdownloaded kvserve-test\/stories260K: 1\.0 MiB \(100%\)[^\n]*\n$/);
      }
    }
  });
});

describe('progress as log records (kvserve serve)', () => {
  test('the start, each file, at most one record per tenth of the bytes, the end; notes too', async () => {
    const records: Array<{ fields: Record<string, unknown>; msg: string }> = [];
    const log = { info: (fields: Record<string, unknown>, msg: string) => records.push({ fields, msg }) };
    const s = settings();
    const dir = await resolveModelDir('kvserve-test/stories260K', { settings: s, progress: true, log });
    const repo = 'kvserve-test/stories260K';
    const weights = statSync(join(dir, 'model.safetensors')).size;
    expect(records[0]).toEqual({
      fields: { repo, files: 5, totalBytes: expect.any(Number) },
      msg: `downloading ${repo}`,
    });
    const total = records[0]!.fields.totalBytes as number;
    expect(records).toContainEqual({
      fields: { repo, file: 'model.safetensors', bytes: weights },
      msg: 'downloading file',
    });
    const pcts = records.filter((r) => r.msg === 'downloading').map((r) => r.fields.percent as number);
    expect(pcts.length).toBeGreaterThanOrEqual(3);
    expect(pcts.length).toBeLessThanOrEqual(9);
    expect(new Set(pcts.map((p) => Math.floor(p / 10))).size).toBe(pcts.length);
    expect([...pcts].sort((a, b) => a - b)).toEqual(pcts);
    expect(records.at(-1)).toEqual({
      fields: { repo, totalBytes: total, seconds: expect.any(Number), bytesPerSecond: expect.any(Number) },
      msg: `downloaded ${repo}`,
    });
    // A second resolve of a commit is the cache's: a note, as a record.
    records.length = 0;
    const commit = readFileSync(join(s.cacheDir, `models--kvserve-test--stories260K`, 'refs', 'main'), 'utf8');
    await resolveModelDir(repo, { settings: s, progress: true, revision: commit, log });
    expect(records).toEqual([{ fields: { repo, revision: commit }, msg: expect.stringMatching(/from the cache/) }]);
  });

  test('the same record sink without a download: what a fake progress feed gives', () => {
    const records: Array<{ fields: Record<string, unknown>; msg: string }> = [];
    let t = 0;
    const p = logDownloadProgress(
      { info: (fields: Record<string, unknown>, msg: string) => records.push({ fields, msg }) },
      () => t,
    );
    p.start('org/name', 2, 1000);
    p.file('a.bin', 400, 0);
    for (const done of [0, 50, 99, 100, 150, 400]) p.bytes(done);
    p.file('b.bin', 600, 200);
    for (const done of [450, 999, 1000]) p.bytes(done);
    t = 2000;
    p.finish();
    expect(records).toEqual([
      { fields: { repo: 'org/name', files: 2, totalBytes: 1000 }, msg: 'downloading org/name' },
      { fields: { repo: 'org/name', file: 'a.bin', bytes: 400 }, msg: 'downloading file' },
      { fields: { repo: 'org/name', bytes: 100, totalBytes: 1000, percent: 10 }, msg: 'downloading' },
      { fields: { repo: 'org/name', bytes: 400, totalBytes: 1000, percent: 40 }, msg: 'downloading' },
      { fields: { repo: 'org/name', file: 'b.bin', bytes: 600, resumeAt: 200 }, msg: 'downloading file' },
      { fields: { repo: 'org/name', bytes: 999, totalBytes: 1000, percent: 99 }, msg: 'downloading' },
      { fields: { repo: 'org/name', totalBytes: 1000, seconds: 2, bytesPerSecond: 500 }, msg: 'downloaded org/name' },
    ]);
  });
});
