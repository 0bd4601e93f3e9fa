// `kvserve serve|generate|chat --help`: every flag of the command's table is listed with a placeholder and
// its default (the values the parser starts from), the columns hold at 100 characters, and there are examples.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { chatDefaults, chatFlags } from '../../src/chat/chat-cli.js';
import { repoRoot, serverDefaults, serverFlags, type FlagSpec } from '../../src/config.js';
import { generateDefaults, generateFlags } from '../../src/generate.js';

const run = promisify(execFile);
const tsx = join(repoRoot, 'node_modules', '.bin', 'tsx');
const COLUMN = 32;

async function help(command: string): Promise<string> {
  const { stdout } = await run(tsx, [join(repoRoot, 'src', 'cli.ts'), command, '--help'], {
    cwd: repoRoot,
    env: { ...process.env, KVSERVE_API_KEY: '' },
  });
  return stdout;
}

/** Each option's entry: its first line and the continuation lines under it, joined. */
function entries(page: string): Map<string, string> {
  const out = new Map<string, string>();
  let current = '';
  for (const line of page.split('\n')) {
    const m = /^ {2}--(?:\[no-\])?([a-z0-9-]+)/.exec(line);
    if (m) {
      current = m[1]!;
      out.set(current, line);
    } else if (current && line.startsWith(' '.repeat(COLUMN))) out.set(current, `${out.get(current)!} ${line.trim()}`);
    else current = '';
  }
  return out;
}

function shownDefault(spec: FlagSpec, value: unknown): string {
  if (value === undefined || value === '') return 'none';
  if (spec.kind === 'boolean') return value ? 'on' : 'off';
  return String(value);
}

// The values each command's parser starts from (the child process runs without API keys in its environment).
const noKeys = <T extends object>(d: T) => ({ ...d, apiKey: undefined });
const pages: Array<[string, Record<string, FlagSpec>, object]> = [
  ['serve', serverFlags, noKeys(serverDefaults())],
  ['generate', generateFlags, { ...generateDefaults() }],
  ['chat', chatFlags, noKeys(chatDefaults())],
];

describe.each(pages)('kvserve %s --help', (command, flags, defaults) => {
  test('lists every option with a placeholder and its default', async () => {
    const page = await help(command);
    const listed = entries(page);
    for (const [name, spec] of Object.entries(flags)) {
      const entry = listed.get(name);
      expect(entry, `--${name} missing`).toBeDefined();
      if (/\((default\b|required\))/.test(spec.help))
        expect(entry).toContain(spec.help.match(/\((default[^)]*|required)\)/)![0]);
      else
        expect(entry, `--${name}`).toContain(
          `(default: ${shownDefault(spec, (defaults as Record<string, unknown>)[spec.key])})`,
        );
      if (spec.kind !== 'boolean') expect(entry, `--${name}`).toMatch(new RegExp(`^  --${name} (\\S+)`));
    }
    expect(page).not.toMatch(/<value>|VALUE/);
    expect(listed.get('model')).toMatch(/^ {2}--model DIR /);
  });

  test('keeps its columns: no line over 100 characters, every description at column 32, choices wrapped', async () => {
    const page = await help(command);
    for (const line of page.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
    for (const line of page.split('\n').filter((l) => l.startsWith('  --'))) {
      expect(line.slice(0, COLUMN), line).toMatch(/^ {2}--\S+( \S+)? *$/);
      expect(line[COLUMN], line).not.toBe(' ');
    }
    expect(entries(page).get('dtype')).toMatch(/--dtype DTYPE +.*DTYPE is one of auto, float32, bfloat16, float16/);
  });

  test('ends with at least two examples', async () => {
    const page = await help(command);
    const examples = page
      .split('\nexamples:\n')[1]!
      .split('\n')
      .filter((l) => l.startsWith(`  kvserve ${command}`));
    expect(examples.length).toBeGreaterThanOrEqual(2);
  });
});
