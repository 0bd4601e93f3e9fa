// A weights file truncated under a running CPU server (mmapped weights are read in place). With the default
// load format the next read of a weight is a SIGBUS: the server must say so in one line and exit with 135,
// never die silently. With --load-format private the weights were read into the process's own memory, and
// the server keeps answering exactly as before.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/config.js';
import { expected, storiesDir } from './helpers/stories.js';

const cli = join(repoRoot, 'src', 'cli.ts');
const work = mkdtempSync(join(tmpdir(), 'kvserve-weights-file-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

/** `kvserve serve` on a private copy of the demo model; resolves once it answers /health. */
async function serveCopy(name: string, extra: string[]) {
  const model = join(work, name);
  cpSync(storiesDir, model, { recursive: true });
  // node itself, not the tsx wrapper (which would turn the server's death by a signal into an exit code).
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', cli, 'serve', '--model', model, '--port', '0', '--device', 'cpu', '--threads', '1', ...extra],
    {
      cwd: repoRoot,
      env: { ...process.env, KVSERVE_API_KEY: '' },
    },
  );
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', () => {
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    void exited.then((e) => reject(new Error(`exited ${JSON.stringify(e)}: ${stderr}`)));
  });
  for (let i = 0; i < 600 && (await fetch(`${url}/health`)).status !== 200; i++)
    await new Promise((r) => setTimeout(r, 50));
  return { url, weights: join(model, 'model.safetensors'), exited, stderr: () => stderr };
}

async function greedyText(url: string, i: number): Promise<string> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: expected[i]!.prompt, max_tokens: 40, temperature: 0, ignore_eos: true }),
  });
  expect(res.status).toBe(200);
  return (await res.json()).choices[0].text;
}

const reference = (i: number) => expected[i]!.greedy_text.split(' ').slice(0, 10).join(' ');

describe('the weights file changes under a running server', () => {
  it('mmapped: one line naming the file and --load-format private, and exit code 135', async () => {
    const s = await serveCopy('mmapped', []);
    expect((await greedyText(s.url, 0)).trimStart()).toContain(reference(0));
    truncateSync(s.weights, 0);
    const during = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: expected[1]!.prompt, max_tokens: 10 }),
    }).catch((e: Error) => e);
    expect(during).toBeInstanceOf(Error); // the process is gone before it can answer
    expect(await s.exited).toEqual({ code: 135, signal: null });
    expect(s.stderr()).toContain(
      `kvserve: the weights file ${s.weights} was truncated or removed while mmapped (SIGBUS); restart, or use ` +
        '--load-format private to load weights into private memory\n',
    );
  });

  it('--load-format private: the server keeps answering correctly', async () => {
    const s = await serveCopy('private', ['--load-format', 'private']);
    expect((await greedyText(s.url, 0)).trimStart()).toContain(reference(0));
    truncateSync(s.weights, 0);
    for (const i of [1, 2, 0]) expect((await greedyText(s.url, i)).trimStart()).toContain(reference(i));
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });
});
