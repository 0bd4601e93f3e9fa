// Runs `kvserve bench` in-process with captured stdout / stderr, and gives each test a scratch folder.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBenchCli } from '../../src/bench/index.js';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export async function runCli(args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runBenchCli(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

export function scratchDir(): string {
  return mkdtempSync(join(tmpdir(), 'kvserve-bench-'));
}

export function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

/** The stories260K tokenizer folder shipped in the repository. */
export const storiesDir = join(import.meta.dirname, '..', '..', 'models', 'stories260K');
