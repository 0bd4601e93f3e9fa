// --max-concurrency caps the requests in flight, as the server observes them.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readJson, runCli, scratchDir } from './run-cli.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

let server: ScriptedServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('--max-concurrency', () => {
  it.each([1, 3])('never more than %i in flight, and the cap is reached', async (limit) => {
    server = await startScriptedServer({ firstDelayMs: 30, interChunkMs: 10, chunks: 3, usage: true });
    const file = join(scratchDir(), 'run.json');
    const r = await runCli([
      '--base-url',
      server.baseUrl,
      '--num-prompts',
      '12',
      '--max-concurrency',
      String(limit),
      '--input-len',
      '4',
      '--output-len',
      '3',
      '--warmup',
      '0',
      '--result-file',
      file,
    ]);
    expect(r.code).toBe(0);
    expect(server.maxInFlight()).toBe(limit);
    const json = readJson(file);
    expect(json.completed).toBe(12);
    expect(json.max_concurrency).toBe(limit);
  });

  it('unlimited with rate inf sends everything at once', async () => {
    server = await startScriptedServer({ firstDelayMs: 100, interChunkMs: 10, chunks: 2, usage: true });
    const r = await runCli([
      '--base-url',
      server.baseUrl,
      '--num-prompts',
      '10',
      '--input-len',
      '4',
      '--output-len',
      '2',
      '--warmup',
      '0',
    ]);
    expect(r.code).toBe(0);
    expect(server.maxInFlight()).toBe(10);
  });
});
