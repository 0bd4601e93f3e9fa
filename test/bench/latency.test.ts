// The reported latencies match a scripted server's known delays.
// Script: first content chunk 80 ms after the request, then one chunk every 50 ms, 6 chunks:
//   TTFT = 80, ITL = 50, E2EL = 80 + 5·50 = 330, TPOT = (330 − 80) / (tokens − 1).
// Tolerance: ±15 ms on means (timers on a loaded 2-core box fire late, never early; localhost adds ~1 ms).
// Two warm-up requests first, so connection set-up and JIT warm-up stay out of the measured run.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readJson, runCli, scratchDir } from './run-cli.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

const TOL = 15;
const FIRST = 80;
const INTER = 50;
const CHUNKS = 6;
const E2EL = FIRST + (CHUNKS - 1) * INTER;

let server: ScriptedServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function bench(extra: string[]): Promise<{ json: Record<string, unknown>; out: string }> {
  const file = join(scratchDir(), 'run.json');
  const r = await runCli([
    '--base-url',
    server!.baseUrl,
    '--num-prompts',
    '8',
    '--max-concurrency',
    '4',
    '--input-len',
    '8',
    '--output-len',
    String(CHUNKS),
    '--warmup',
    '2',
    '--result-file',
    file,
    ...extra,
  ]);
  expect(r.err).not.toMatch(/kvserve bench: (?!\d+ prompts|wrote|warming)/);
  expect(r.code).toBe(0);
  return { json: readJson(file), out: r.out };
}

describe('latency against scripted delays', () => {
  it('completions with usage: TTFT, ITL, TPOT, E2EL', async () => {
    server = await startScriptedServer({ firstDelayMs: FIRST, interChunkMs: INTER, chunks: CHUNKS, usage: true });
    const { json } = await bench([]);
    expect(json.completed).toBe(8);
    expect(json.failed).toBe(0);
    expect(json.mean_ttft_ms).toBeGreaterThanOrEqual(FIRST - 1);
    expect(json.mean_ttft_ms).toBeLessThanOrEqual(FIRST + TOL);
    expect(Math.abs((json.mean_itl_ms as number) - INTER)).toBeLessThanOrEqual(TOL);
    expect(Math.abs((json.mean_tpot_ms as number) - INTER)).toBeLessThanOrEqual(TOL);
    expect(Math.abs((json.mean_e2el_ms as number) - E2EL)).toBeLessThanOrEqual(TOL);
    expect(json.total_output_tokens).toBe(8 * CHUNKS);
    // every request: CHUNKS − 1 gaps
    expect((json.itls as number[][]).every((g) => g.length === CHUNKS - 1)).toBe(true);
    // the request asked for what the issue says
    const body = server.seen.at(-1)!.body;
    expect(body).toMatchObject({
      model: 'scripted-model',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: CHUNKS,
    });
    expect(body.ignore_eos).toBeUndefined();
  });

  it('usage with 2 tokens per chunk: TPOT = (E2EL − TTFT) / (2·chunks − 1), ITL stays per chunk', async () => {
    server = await startScriptedServer({
      firstDelayMs: FIRST,
      interChunkMs: INTER,
      chunks: CHUNKS,
      usage: true,
      tokensPerChunk: 2,
    });
    const { json } = await bench(['--ignore-eos']);
    const tpot = ((CHUNKS - 1) * INTER) / (2 * CHUNKS - 1); // 22.7 ms
    expect(Math.abs((json.mean_tpot_ms as number) - tpot)).toBeLessThanOrEqual(TOL / 2);
    expect(Math.abs((json.mean_itl_ms as number) - INTER)).toBeLessThanOrEqual(TOL);
    expect(json.total_output_tokens).toBe(8 * CHUNKS * 2);
    expect(server.seen.at(-1)!.body.ignore_eos).toBe(true);
  });

  it('chat: a role-only first chunk does not count as the first token', async () => {
    server = await startScriptedServer({
      firstDelayMs: FIRST,
      interChunkMs: INTER,
      chunks: CHUNKS,
      usage: true,
      roleChunk: true,
    });
    const { json } = await bench(['--endpoint', '/v1/chat/completions']);
    expect(json.backend).toBe('openai-chat');
    expect(json.mean_ttft_ms).toBeGreaterThanOrEqual(FIRST - 1);
    expect(json.mean_ttft_ms).toBeLessThanOrEqual(FIRST + TOL);
    expect(Math.abs((json.mean_e2el_ms as number) - E2EL)).toBeLessThanOrEqual(TOL);
    const body = server.seen.at(-1)!.body;
    expect(body).toMatchObject({ max_completion_tokens: CHUNKS, max_tokens: CHUNKS, messages: [{ role: 'user' }] });
  });

  it('no usage and no tokenizer: output tokens = content chunks, and the output says so', async () => {
    server = await startScriptedServer({ firstDelayMs: FIRST, interChunkMs: INTER, chunks: CHUNKS, usage: false });
    const { json, out } = await bench([]);
    expect(json.total_output_tokens).toBe(8 * CHUNKS);
    expect(Math.abs((json.mean_tpot_ms as number) - INTER)).toBeLessThanOrEqual(TOL);
    expect(out).toMatch(/number of content chunks/);
    expect(out).toMatch(/approximate/); // random words without --tokenizer
  });

  it('goodput counts only requests within every SLO', async () => {
    server = await startScriptedServer({ firstDelayMs: FIRST, interChunkMs: INTER, chunks: CHUNKS, usage: true });
    const strict = await bench(['--goodput', 'ttft:40', 'tpot:1000']);
    expect(strict.json.request_goodput).toBe(0);
    const loose = await bench(['--goodput', 'ttft:1000', 'e2el:5000']);
    expect(loose.json.request_goodput).toBeCloseTo(loose.json.request_throughput as number, 9);
    expect(loose.out).toMatch(/Request goodput/);
  });
});
