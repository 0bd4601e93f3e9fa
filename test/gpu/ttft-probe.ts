// Where TTFT at concurrency 1 goes outside the engine step: one request at a time, max_tokens 1, the same
// prompt length sent as token ids (no tokenizer) and as text of the synthetic tokenizer ("w<id>" words), and
// the server's own view from /metrics (vllm:time_to_first_token_seconds: arrival to first token;
// vllm:request_queue_time_seconds: arrival to first scheduled, i.e. tokenizing and admission).
// A benchmark, not a test. Usage: npx tsx test/gpu/ttft-probe.ts BASE_URL [ISL=128] [N=20] [VOCAB=30000]
import { metricValue } from '../server/helpers/disconnect.js';

const base = process.argv[2] ?? 'http://127.0.0.1:8011';
const ISL = Number(process.argv[3] ?? 128);
const N = Number(process.argv[4] ?? 20);
const VOCAB = Number(process.argv[5] ?? 30000);

async function metric(name: string): Promise<{ sum: number; count: number }> {
  return { sum: await metricValue(base, `${name}_sum`), count: await metricValue(base, `${name}_count`) };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

async function run(label: string, prompt: (i: number) => string | number[]) {
  const ttft0 = await metric('vllm:time_to_first_token_seconds');
  const queue0 = await metric('vllm:request_queue_time_seconds');
  const times: number[] = [];
  for (let i = 0; i < N + 2; i++) {
    const t = performance.now();
    const r = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: prompt(i), max_tokens: 1, temperature: 0, ignore_eos: true }),
    });
    if (!r.ok) throw new Error(`${label}: HTTP ${r.status} ${await r.text()}`);
    await r.json();
    if (i >= 2) times.push(performance.now() - t);
  }
  const ttft1 = await metric('vllm:time_to_first_token_seconds');
  const queue1 = await metric('vllm:request_queue_time_seconds');
  const n = ttft1.count - ttft0.count;
  console.log(
    `${label.padEnd(22)} client median ${median(times).toFixed(2)} ms | server TTFT mean ${((1000 * (ttft1.sum - ttft0.sum)) / n).toFixed(2)} ms, queue mean ${((1000 * (queue1.sum - queue0.sum)) / n).toFixed(2)} ms`,
  );
}

async function main() {
  const ids = (i: number) => Array.from({ length: ISL }, (_, j) => 3 + ((i * 7919 + j * 104729) % (VOCAB - 3)));
  await run(`${ISL} token ids`, ids);
  await run(`${ISL} words of text`, (i) =>
    ids(i)
      .map((id) => `w${id}`)
      .join(' '),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
