// `kvserve build --quantization int8` as a user runs it: progress per stage, the per-layer summary and the
// measured quality on stderr, engine-info showing it; then the engine served: greedy ids through
// `generate --engine` and through `serve --engine` are the same (the int8 engine is its own reference), and
// every refusal is one line with exit code 1.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { serveCompletion } from '../server/helpers/child-server.js';
import { storiesDir, tempDir } from './engine-helpers.js';

let engine: string;
let buildLog: string;

beforeAll(async () => {
  engine = join(tempDir(), 'stories-int8');
  const r = await kvserve([
    'build',
    '--model',
    storiesDir,
    '--quantization',
    'int8',
    '--out',
    engine,
    '--threads',
    '1',
  ]);
  expect(r.code, r.stderr).toBe(0);
  buildLog = r.stderr;
});

describe('kvserve build --quantization int8', () => {
  test('progress for every stage, the per-layer table and the quality line', () => {
    for (const stage of ['prepare', 'calibrate', 'quantize', 'write', 'hash', 'copy', 'evaluate'])
      expect(buildLog).toContain(`building: ${stage} 100%`);
    expect(buildLog).toMatch(
      /^int8 \(\S+\): 36 of 36 linear layers; calibrated on 20 samples, \d+ tokens of .*stories-calib\.txt$/m,
    );
    expect(buildLog).toMatch(
      /^layer +as +smoothing +weight scale +act abs-max +error +unsmoothed +kept in float because$/m,
    );
    expect(buildLog).toMatch(/^model\.layers\.4\.mlp\.down_proj +int8 +((absmax|percentile) α=0\.\d0 \(act\)|none) /m);
    expect(buildLog).toMatch(
      /^quality on \d+ held-out tokens of .*stories-heldout\.txt: perplexity \d+\.\d{3} float, \d+\.\d{3} int8 \(-?\d+\.\d\d%\), top-1 agreement \d+\.\d\d%$/m,
    );
    expect(buildLog).toContain(`kvserve: built ${engine} (int8 + float32, cpu`);
  });

  test('engine-info shows the quantization', async () => {
    const info = await kvserve(['engine-info', engine]);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/^quantization +int8$/m);
    expect(info.stdout).toMatch(/^ {2}lm_head +int8 /m);
    expect(info.stdout).toMatch(/^ {2}quality on \d+ held-out tokens/m);
    expect(info.stdout).toMatch(
      /^rebuild +kvserve build --model .* --quantization int8 --calib-data .*stories-calib\.txt --calib-samples 128 /m,
    );
  });
});

describe('an int8 engine served', () => {
  test('serve --engine gives the greedy ids generate --engine gives', async () => {
    const prompt = 'Once upon a time, there was a little dog';
    const g = await kvserve([
      'generate',
      '--engine',
      engine,
      '--prompt',
      prompt,
      '--max-tokens',
      '60',
      '--ignore-eos',
      '--json',
      '--threads',
      '1',
    ]);
    expect(g.code, g.stderr).toBe(0);
    const local = JSON.parse(g.stdout) as { output_ids: number[]; text: string };
    expect(local.output_ids).toHaveLength(60);
    const { answer } = await serveCompletion(['--engine', engine], {
      model: 'stories-int8',
      prompt,
      max_tokens: 60,
      temperature: 0,
      ignore_eos: true,
      logprobs: 0,
      return_tokens_as_token_ids: true,
    });
    const body = answer as { choices: Array<{ text: string; logprobs: { tokens: string[] } }> };
    const ids = body.choices[0]!.logprobs.tokens.map((t) => Number(t.replace('token_id:', '')));
    expect(ids).toEqual(local.output_ids);
    expect(body.choices[0]!.text).toBe(local.text);
  });
});

describe('refusals, one line each', () => {
  const empty = join(tempDir(), 'empty.txt');
  writeFileSync(empty, '\n\n');
  test.each([
    [['--quantization', 'int8', '--calib-data', empty], /^kvserve: --calib-data .*empty\.txt holds no text$/],
    [
      ['--quantization', 'int8', '--calib-samples', '1'],
      /^kvserve: --calib-data .* is too short: \d+ tokens in 1 samples/,
    ],
    [
      ['--quantization', 'int8', '--keep-precision', 'lm_head,attn'],
      /^kvserve: --keep-precision: no linear layer of this model is named "attn"/,
    ],
    [['--keep-precision', 'lm_head'], /^kvserve: the int8 options \(keepPrecision\) need --quantization int8$/],
    [
      ['--quantization', 'int8', '--calib-observer', 'mse'],
      /^kvserve: --calib-observer must be one of auto, absmax, percentile, got "mse"$/,
    ],
  ])('build %j', async (flags, line) => {
    const r = await kvserve(['build', '--model', storiesDir, '--out', join(tempDir(), 'e'), '--quiet', ...flags]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(line);
  });
});
