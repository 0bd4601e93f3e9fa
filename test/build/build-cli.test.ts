// `kvserve build`, `engine-info`, and `serve` / `generate --engine` as a user runs them: real processes, the
// outputs against transformers' greedy ids for stories260K, and every refusal one line with exit code 1.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { spawnServe, untilHealthy } from '../server/helpers/child-server.js';
import { storiesDir, tempDir } from './engine-helpers.js';
import { loadNative } from '../../src/runner/binding.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';

const expected = JSON.parse(readFileSync(join(storiesDir, 'expected.json'), 'utf8')) as Array<{
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
  greedy_text: string;
}>;

let engine: string;
beforeAll(async () => {
  engine = join(tempDir(), 'stories-engine');
  const r = await kvserve(['build', '--model', storiesDir, '--out', engine, '--threads', '1', '--max-num-seqs', '8']);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toContain(`kvserve: built ${engine} (float32, cpu`);
  expect(r.stderr).toMatch(/building: write 100%/);
});

describe('kvserve build and engine-info', () => {
  test('engine-info and build --print show the manifest', async () => {
    const info = await kvserve(['engine-info', engine]);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/^format +2 \(kvserve \d+\.\d+\.\d+, built /m);
    expect(info.stdout).toMatch(new RegExp(`^model +${storiesDir}$`, 'm'));
    expect(info.stdout).toMatch(/^content hash +sha256:[0-9a-f]{64} \(6 files\)$/m);
    expect(info.stdout).toMatch(
      /^profile +max-num-seqs 8, max-num-batched-tokens 2048, max-model-len from config.json$/m,
    );
    expect((await kvserve(['build', '--print', engine])).stdout).toBe(info.stdout);
  });

  test.each([
    [['--quantization', 'fp8'], 'kvserve: --quantization fp8 is for --device cuda (on cpu: none or int8)'],
    [['--quantization', 'q4'], 'kvserve: --quantization must be one of none, fp8, int8, got "q4"'],
    [['--device', 'tpu'], 'kvserve: --device must be one of cpu, cuda, got "tpu"'],
  ])('build %j is refused in one line', async (flags, line) => {
    const r = await kvserve(['build', '--model', storiesDir, '--out', join(tempDir(), 'e'), ...flags]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(line);
  });

  test.runIf(!loadNative().builtWithCuda())('build --device cuda without the CUDA backend: one line', async () => {
    const out = join(tempDir(), 'e');
    const r = await kvserve(['build', '--model', storiesDir, '--out', out, '--device', 'cuda', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--device cuda: this build has no CUDA backend/);
  });

  test('build without --out', async () => {
    const r = await kvserve(['build', '--model', storiesDir]);
    expect(r.stderr.trim()).toBe('kvserve: --out DIR is required (the engine folder to write)');
  });
});

describe('generate and serve --engine', () => {
  test.each(expected.slice(0, 2).map((e) => [e.prompt, e] as const))(
    'generate "%s": transformers\' 80 greedy ids',
    async (_, e) => {
      const r = await kvserve([
        'generate',
        '--engine',
        engine,
        '--prompt',
        e.prompt,
        '--max-tokens',
        '80',
        '--ignore-eos',
        '--json',
        '--threads',
        '1',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { prompt_ids: number[]; output_ids: number[]; text: string };
      expect(out.prompt_ids).toEqual(e.prompt_ids);
      expect(out.output_ids).toEqual(e.greedy_ids);
      expect(out.text.trimStart()).toBe(e.greedy_text);
    },
  );

  test('generate --engine of a damaged engine: one line, exit 1', async () => {
    const bad = join(tempDir(), 'bad');
    const r0 = await kvserve(['build', '--model', storiesDir, '--out', bad, '--quiet']);
    expect(r0.code).toBe(0);
    writeFileSync(join(bad, 'manifest.json'), '{');
    const r = await kvserve(['generate', '--engine', bad, '--prompt', 'hi', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(
      new RegExp(
        `^kvserve: engine ${bad}: manifest.json is not valid JSON \\(.*\\) \\(rebuild it with kvserve build\\)$`,
      ),
    );
  });

  test('serve --engine answers a greedy completion as transformers', async () => {
    const e = expected[0]!;
    const server = spawnServe(['--engine', engine]);
    try {
      const url = await server.url;
      await untilHealthy(url);
      const ready = server.records().find((r) => r.msg === 'ready');
      expect(ready, server.stdout()).toMatchObject({ device: 'cpu' });
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'stories-engine',
          prompt: e.prompt,
          max_tokens: 80,
          temperature: 0,
          ignore_eos: true,
        }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { choices: Array<{ text: string }> };
      expect(body.choices[0]!.text.trimStart()).toBe(e.greedy_text);
    } finally {
      server.child.kill('SIGKILL');
    }
  });
});
