// `kvserve serve` as a process: listens, answers /health, serves with --chat-template and --api-key,
// exits 0 on SIGTERM; bad flags are one clear line and a non-zero exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/config.js';
import { expected } from './helpers/stories.js';

const tsx = join(repoRoot, 'node_modules', '.bin', 'tsx');
const cli = join(repoRoot, 'src', 'cli.ts');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

function serve(args: string[]) {
  const child = spawn(tsx, [cli, 'serve', ...args], { cwd: repoRoot, env: { ...process.env, KVSERVE_API_KEY: '' } });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', () => {
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  url.catch(() => undefined); // tests that expect a failed start await `exited` instead
  return { child, url, exited, stderr: () => stderr };
}

async function untilHealthy(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await fetch(`${url}/health`)).status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('never became healthy');
}

describe('kvserve serve', () => {
  it('serves the demo with an override template and an API key, then exits 0 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvserve-serve-'));
    const template = join(dir, 'plain.jinja');
    // Contents only, no BOS: so the prompt differs from the model's own template by exactly the <s>.
    writeFileSync(template, "{% for m in messages %}{{ m['content'] }}{% endfor %}");
    const s = serve([
      '--port',
      '0',
      '--device',
      'cpu',
      '--threads',
      '1',
      '--chat-template',
      template,
      '--api-key',
      'k1',
      '--served-model-name',
      'demo',
    ]);
    const url = await s.url;
    await untilHealthy(url);
    const headers = { 'content-type': 'application/json', authorization: 'Bearer k1' };
    const tok = await fetch(`${url}/tokenize`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ messages: [{ role: 'user', content: expected[0]!.prompt }] }),
    });
    expect((await tok.json()).tokens).toEqual(expected[0]!.prompt_ids.slice(1));
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ model: 'demo', prompt: expected[0]!.prompt, max_tokens: 80, temperature: 0 }),
    });
    expect((await res.json()).choices[0].text).toBe(expected[0]!.greedy_text);
    expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    expect(s.stderr()).toMatch(/loading: .*100%/);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });

  it('a bad flag is one line and a non-zero exit', async () => {
    const s = serve(['--port', 'eighty']);
    await expect(s.url).rejects.toThrow();
    expect(await s.exited).not.toBe(0);
    expect(s.stderr().trim()).toBe('kvserve: --port must be an integer, got "eighty"');
  });

  it('a missing --chat-template file is a clear start-up error', async () => {
    const s = serve(['--chat-template', '/nonexistent/t.jinja']);
    expect(await s.exited).not.toBe(0);
    expect(s.stderr()).toMatch(/--chat-template: .*no such file/i);
  });
});
