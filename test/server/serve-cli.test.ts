// `kvserve serve` as a process: listens, answers /health, serves with --chat-template and --api-key,
// exits 0 on SIGTERM; a bad flag is one clear line on stderr and a non-zero exit, a bad start-up one fatal
// record in its log.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Completion } from 'openai/resources/completions';
import { afterAll, describe, expect, it } from 'vitest';
import type { TokenizeResponse } from '../../src/server/schemas/tokenize.js';
import { killChildren, spawnServe, untilHealthy } from './helpers/child-server.js';
import { expected } from './helpers/stories.js';

afterAll(killChildren);

describe('kvserve serve', () => {
  it('serves the demo with an override template and an API key, then exits 0 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvserve-serve-'));
    const template = join(dir, 'plain.jinja');
    // Contents only, no BOS: so the prompt differs from the model's own template by exactly the <s>.
    writeFileSync(template, "{% for m in messages %}{{ m['content'] }}{% endfor %}");
    const s = spawnServe(['--chat-template', template, '--api-key', 'k1', '--served-model-name', 'demo']);
    const url = await s.url;
    await untilHealthy(url);
    const headers = { 'content-type': 'application/json', authorization: 'Bearer k1' };
    const tok = await fetch(`${url}/tokenize`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ messages: [{ role: 'user', content: expected[0]!.prompt }] }),
    });
    expect(((await tok.json()) as TokenizeResponse).tokens).toEqual(expected[0]!.prompt_ids.slice(1));
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ model: 'demo', prompt: expected[0]!.prompt, max_tokens: 80, temperature: 0 }),
    });
    expect(((await res.json()) as Completion).choices[0]!.text).toBe(expected[0]!.greedy_text);
    expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    expect(s.records()).toContainEqual(expect.objectContaining({ msg: 'loading', stage: 'weights', percent: 100 }));
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    expect(s.stderr()).toBe('');
  });

  it('a bad flag is one line and a non-zero exit', async () => {
    // Before the flags parse there is no server nor log format: a plain line on stderr, as every command's.
    const s = spawnServe(['--port', 'eighty']);
    await expect(s.url).rejects.toThrow();
    expect(await s.exited).not.toBe(0);
    expect(s.stderr().trim()).toBe('kvserve: --port must be an integer, got "eighty"');
    expect(s.stdout()).toBe('');
  });

  it('a missing --chat-template file is a clear start-up error: one fatal record', async () => {
    const s = spawnServe(['--chat-template', '/nonexistent/t.jinja']);
    expect(await s.exited).toBe(1);
    expect(s.records()).toEqual([
      expect.objectContaining({ level: 60, msg: expect.stringMatching(/--chat-template: .*no such file/i) }),
    ]);
    expect(s.stderr()).toBe('');
  });
});
