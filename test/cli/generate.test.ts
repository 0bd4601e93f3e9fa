// `kvserve generate` as a user runs it: a real process, stdout/stderr and the exit code.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { kvserve } from './helpers/run-kvserve.js';

const repo = resolve(__dirname, '..', '..');
const demo = resolve(repo, 'models', 'stories260K');
const expected = JSON.parse(readFileSync(join(demo, 'expected.json'), 'utf8')) as Array<{
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
  greedy_text: string;
}>;

describe('kvserve generate on stories260K', () => {
  test.each(expected.map((e) => [e.prompt, e] as const))(
    '"%s": prompt_ids and 80 greedy ids as transformers',
    async (_, e) => {
      const r = await kvserve([
        'generate',
        '--prompt',
        e.prompt,
        '--temperature',
        '0',
        '--max-tokens',
        '80',
        '--ignore-eos',
        '--json',
        '--device',
        'cpu',
      ]);
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout.trim()) as { prompt_ids: number[]; output_ids: number[]; text: string };
      expect(out.prompt_ids).toEqual(e.prompt_ids);
      expect(out.output_ids).toEqual(e.greedy_ids);
      expect(out.text.trimStart()).toBe(e.greedy_text);
    },
  );

  // stories260K (llama2.c's) never emits </s>: EOS stopping is covered by the engine-loop tests.
  test('streams plain text to stdout, progress to stderr', async () => {
    const r = await kvserve(['generate', '--prompt', 'Once upon a time', '--max-tokens', '20', '--device', 'cpu']);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith(', there was a little girl named Lily.')).toBe(true);
    expect(r.stdout).not.toContain('{');
    expect(r.stderr).toMatch(/100%/);
  });
});

describe('kvserve generate errors: one clear line, non-zero exit, no stack trace', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'kvserve-cli-'));
  function modelWith(name: string, edit: (cfg: Record<string, unknown>) => void, configText?: string): string {
    const dir = join(scratch, name);
    cpSync(demo, dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(demo, 'config.json'), 'utf8')) as Record<string, unknown>;
    edit(cfg);
    writeFileSync(join(dir, 'config.json'), configText ?? JSON.stringify(cfg));
    return dir;
  }

  const cases: Array<[string, () => string[], RegExp]> = [
    ['missing model folder', () => ['--model', join(scratch, 'nope')], /model not found/],
    [
      'malformed config.json',
      () => ['--model', modelWith('bad-json', () => {}, '{"hidden_size": 64,')],
      /config\.json/,
    ],
    [
      'unsupported architecture',
      () => [
        '--model',
        modelWith('gpt2', (c) => {
          c.architectures = ['GPT2LMHeadModel'];
          c.model_type = 'gpt2';
        }),
      ],
      /GPT2LMHeadModel|gpt2/,
    ],
    [
      'unsupported dtype',
      () => [
        '--model',
        modelWith('f64', (c) => {
          c.torch_dtype = 'float64';
        }),
      ],
      /float64/,
    ],
    ['prompt longer than the context', () => ['--prompt', 'Once upon a time '.repeat(200)], /context/],
    ['bad flag value', () => ['--temperature', 'hot'], /--temperature/],
  ];
  test.each(cases)('%s', async (_, args, message) => {
    const a = args();
    const r = await kvserve([
      'generate',
      ...(a.includes('--prompt') ? [] : ['--prompt', 'hi']),
      ...a,
      '--device',
      'cpu',
      '--quiet',
    ]);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('npm warn'));
    expect(lines.length, r.stderr).toBe(1);
    expect(lines[0]).toMatch(/^kvserve: /);
    expect(lines[0]).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
