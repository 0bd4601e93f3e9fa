// A weights file truncated under a running CPU server (mmapped weights are read in place). With the default
// load format the next read of a weight is a SIGBUS: the server must say so in one line and exit with 135,
// never die silently. With --load-format private the weights were read into the process's own memory, and
// the server keeps answering exactly as before.
import { cpSync, mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Completion } from 'openai/resources/completions';
import { afterAll, describe, expect, it } from 'vitest';
import { killChildren, spawnServe, untilHealthy } from './helpers/child-server.js';
import { expected, storiesDir } from './helpers/stories.js';

const work = mkdtempSync(join(tmpdir(), 'kvserve-weights-file-'));
afterAll(() => {
  killChildren();
  rmSync(work, { recursive: true, force: true });
});

/** `kvserve serve` on a private copy of the demo model; resolves once it answers /health. */
async function serveCopy(name: string, extra: string[]) {
  const model = join(work, name);
  cpSync(storiesDir, model, { recursive: true });
  // node itself, not the tsx wrapper (which would turn the server's death by a signal into an exit code).
  const s = spawnServe(['--model', model, ...extra]);
  const url = await s.url;
  await untilHealthy(url, 30_000);
  return { url, weights: join(model, 'model.safetensors'), exited: s.exited, stderr: s.stderr };
}

async function greedyText(url: string, i: number): Promise<string> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: expected[i]!.prompt, max_tokens: 40, temperature: 0, ignore_eos: true }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as Completion).choices[0]!.text;
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
    expect(await s.exited).toBe(135); // an exit code, not death by the signal
    // A crash: the native SIGBUS handler's line, on stderr.
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
