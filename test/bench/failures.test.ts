// Failures are counted, kept apart from the latency metrics, and reported with their messages.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readJson, runCli, scratchDir } from './run-cli.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

let server: ScriptedServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const ok = { firstDelayMs: 20, interChunkMs: 10, chunks: 4, usage: true };

async function bench(extra: string[] = []) {
  const file = join(scratchDir(), 'run.json');
  const r = await runCli([
    '--base-url',
    server!.baseUrl,
    '--num-prompts',
    '10',
    '--max-concurrency',
    '1',
    '--input-len',
    '4',
    '--output-len',
    '4',
    '--warmup',
    '0',
    '--result-file',
    file,
    ...extra,
  ]);
  return { ...r, json: r.code === 0 ? readJson(file) : {} };
}

describe('failures', () => {
  it("an HTTP 500 counts as failed with the server's message; the others still measure", async () => {
    // requests are sent one at a time, so arrival index = dataset index
    server = await startScriptedServer((i) => (i % 2 === 1 ? { ...ok, status: 500 } : ok));
    const { code, out, json } = await bench();
    expect(code).toBe(0);
    expect(json.completed).toBe(5);
    expect(json.failed).toBe(5);
    const errors = json.errors as string[];
    expect(errors.filter((e, i) => i % 2 === 1 && e === 'HTTP 500: scripted failure 500')).toHaveLength(5);
    expect(errors.filter((e, i) => i % 2 === 0 && e === '')).toHaveLength(5);
    expect(json.output_lens).toEqual([4, 0, 4, 0, 4, 0, 4, 0, 4, 0]);
    expect(json.total_output_tokens).toBe(20);
    expect(out).toMatch(/Failed requests:\s+5/);
    expect(out).toMatch(/5 × HTTP 500: scripted failure 500/);
  });

  it('a stream broken mid-way is a failure that says after how many chunks', async () => {
    server = await startScriptedServer((i) => (i === 3 ? { ...ok, breakAfter: 2 } : ok));
    const { json, out } = await bench();
    expect(json.failed).toBe(1);
    expect((json.errors as string[])[3]).toMatch(/^stream broken after 2 content chunks: /);
    expect(out).toMatch(/1 × stream broken after 2 content chunks/);
  });

  it('a stream that ends without [DONE] is a failure', async () => {
    server = await startScriptedServer((i) => (i === 0 ? { ...ok, omitDone: true } : ok));
    const { json } = await bench();
    expect(json.failed).toBe(1);
    expect((json.errors as string[])[0]).toBe('stream ended without data: [DONE] after 4 content chunks');
  });

  it('a stream with no content chunk is a failure', async () => {
    server = await startScriptedServer((i) => (i === 0 ? { ...ok, chunks: 0 } : ok));
    const { json } = await bench();
    expect((json.errors as string[])[0]).toBe('no content chunk received, so no TTFT');
  });

  it('a warm-up where every request fails aborts with exit code 1 and the message', async () => {
    server = await startScriptedServer({ ...ok, status: 401 });
    const { code, err } = await bench(['--warmup', '2']);
    expect(code).toBe(1);
    expect(err).toMatch(/warm-up failed: HTTP 401: scripted failure 401/);
    expect(err).toMatch(/check --base-url, --endpoint, --model and --api-key/);
  });

  it('a warm-up failing on the context length points at the length flags, not the connection ones', async () => {
    // kvserve's (and vLLM's) message for a prompt + max_tokens over the model's context
    const errorMessage =
      "This model's maximum context length is 512 tokens. However, you requested 641 tokens (513 in the prompt and 128 in the completion).";
    server = await startScriptedServer({ ...ok, status: 400, errorMessage });
    const { code, err } = await bench(['--warmup', '1']);
    expect(code).toBe(1);
    expect(err).toContain(errorMessage);
    expect(err).toMatch(/lower --input-len \(or --input-lens\) and --output-len/);
    expect(err).not.toMatch(/check --base-url/);
  });

  it('an unreachable server exits 1 with a clear message', async () => {
    server = await startScriptedServer(ok);
    const url = server.baseUrl;
    await server.close();
    server = undefined;
    const r = await runCli(['--base-url', url, '--num-prompts', '2', '--warmup', '0']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot reach .*\/v1\/models/);
  });
});
