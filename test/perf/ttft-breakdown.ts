// Where TTFT at concurrency 1 goes outside the engine step. One request at a time, for each prompt length:
// token ids or text (same lengths, fresh random prompts so the prefix cache never hits), streamed or not,
// max_tokens 1 (and 16 streamed, where the next step is launched before the first token is delivered), sent by
// a minimal node:http client (keep-alive, the first content chunk timed in the socket's 'data' callback) and,
// for one row, by `kvserve bench`'s own client. After every request the server's /metrics gives that request's
// own figures (deltas of the histogram sums): TTFT from arrival to the first token, the queue time (arrival to
// first scheduled: body parsing, validation, tokenizing, admission) and the engine steps it took (launch to
// result, kvserve_engine_step_seconds). Each column is the median over the requests of that figure, each
// difference the median of the per-request differences (robust on a shared machine).
// A benchmark, not a test: it prints a table.
//   npx tsx test/perf/ttft-breakdown.ts                                  # CPU, dummy configs/llama-tiny.json
//   npx tsx test/perf/ttft-breakdown.ts --model models/stories260K --lens 128,384
//   npx tsx test/perf/ttft-breakdown.ts --model configs/llama-3-8b.json --device cuda --threads 0
//   npx tsx test/perf/ttft-breakdown.ts --base-url http://127.0.0.1:8011 --model configs/llama-3-8b.json
// Without --base-url it starts `kvserve serve` (the current source, as the server tests do) on a free port with
// --max-num-batched-tokens 8192 (one step per prompt) and --log-level warn; flags after `--` go to it too.
// --model (and --load-format, dummy for a .json preset) say which tokenizer builds the prompts.
import http from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { streamRequest } from '../../src/bench/stream-request.js';
import { randomDataset } from '../../src/bench/dataset-random.js';
import { finishServerConfig, type ServerConfig, serverDefaults } from '../../src/config.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { killChildren, spawnServe, untilHealthy } from '../server/helpers/child-server.js';
import { metricValues } from '../server/helpers/disconnect.js';

const { values: args, positionals: serveExtra } = parseArgs({
  allowPositionals: true,
  options: {
    'base-url': { type: 'string' },
    model: { type: 'string', default: 'configs/llama-tiny.json' },
    'load-format': { type: 'string' },
    device: { type: 'string', default: 'cpu' },
    threads: { type: 'string', default: '1' },
    lens: { type: 'string', default: '128,2048' },
    requests: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
  },
});
const N = Number(args.requests);
const WARMUP = Number(args.warmup);
const lens = args.lens.split(',').map(Number);
const loadFormat = (args['load-format'] ??
  (args.model.endsWith('.json') ? 'dummy' : 'auto')) as ServerConfig['loadFormat'];
// The model and its tokenizer folder as the server resolves them (a .json preset: a synthetic tokenizer).
const config = finishServerConfig({ ...serverDefaults(), model: args.model, loadFormat });

type Kind = 'ids' | 'text';
interface Row {
  kind: Kind;
  stream: boolean;
  maxTokens: number;
  client: 'raw' | 'bench';
}
const ROWS: Row[] = [
  { kind: 'ids', stream: true, maxTokens: 1, client: 'raw' },
  { kind: 'ids', stream: false, maxTokens: 1, client: 'raw' },
  { kind: 'text', stream: true, maxTokens: 1, client: 'raw' },
  { kind: 'text', stream: false, maxTokens: 1, client: 'raw' },
  { kind: 'text', stream: true, maxTokens: 1, client: 'bench' },
  { kind: 'ids', stream: true, maxTokens: 16, client: 'raw' },
];
const label = (r: Row) =>
  `${r.kind}, ${r.stream ? 'stream' : 'whole'}, max ${r.maxTokens}${r.client === 'bench' ? ', bench client' : ''}`;

/** What one request measured, in ms; NaN where the server does not say. */
interface Sample {
  client: number; // request sent → first content chunk (streamed) or the whole answer (not streamed)
  ttft: number; // server: arrival → first token
  queue: number; // server: arrival → first scheduled
  step: number; // server: the engine steps of this request, launch → result (max_tokens 1 only)
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** The minimal client: POST, then the time of the first SSE event with text (or of the end, not streamed). */
function rawRequest(base: URL, body: string, stream: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first = 0;
    let pending = '';
    const req = http.request(
      base,
      {
        method: 'POST',
        path: '/v1/completions',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.setEncoding('utf8');
        let all = '';
        res.on('data', (text: string) => {
          if (res.statusCode !== 200 || !stream) {
            all += text;
            return;
          }
          if (first) return;
          pending += text;
          for (let end = pending.indexOf('\n\n'); end >= 0 && !first; end = pending.indexOf('\n\n')) {
            const event = pending.slice(0, end);
            pending = pending.slice(end + 2);
            if (!event.startsWith('data: {')) continue;
            const chunk = JSON.parse(event.slice(6)) as { choices?: Array<{ text?: string }> };
            if (chunk.choices?.[0]?.text) first = performance.now();
          }
        });
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${all}`));
          else if (stream && !first) reject(new Error('no content chunk'));
          else resolve((stream ? first : performance.now()) - t0);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const METRICS = [
  'vllm:time_to_first_token_seconds_sum',
  'vllm:request_queue_time_seconds_sum',
  'kvserve_engine_step_seconds_sum',
];

async function serverTotals(url: string): Promise<number[]> {
  return (await metricValues(url, METRICS)).map((v) => (v === undefined ? Number.NaN : v * 1000));
}

async function measure(url: string, model: string, row: Row, prompt: string | number[]): Promise<Sample> {
  const before = await serverTotals(url);
  let client: number;
  if (row.client === 'bench') {
    const cfg = { baseUrl: url, endpoint: '/v1/completions' as const, model, apiKey: undefined, ignoreEos: true };
    const o = await streamRequest(cfg, { prompt: prompt as string, promptLen: 0, outputLen: row.maxTokens }, 0);
    if (!o.success) throw new Error(`${label(row)}: ${o.error}`);
    client = o.ttft * 1000;
  } else {
    const body = { model, prompt, max_tokens: row.maxTokens, temperature: 0, ignore_eos: true, stream: row.stream };
    client = await rawRequest(new URL(url), JSON.stringify(body), row.stream);
  }
  const after = await serverTotals(url);
  const [ttft, queue, step] = after.map((v, i) => v - before[i]!);
  return { client, ttft: ttft!, queue: queue!, step: row.maxTokens === 1 ? step! : Number.NaN };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!;
};
const ms = (x: number) => (Number.isNaN(x) ? '—' : x.toFixed(2));

async function main() {
  let url = args['base-url'];
  if (!url) {
    // A port of our own: at --log-level warn the server does not log the one it listens on.
    const port = await freePort();
    const server = spawnServe([
      '--port',
      String(port),
      '--model',
      config.model,
      '--load-format',
      loadFormat,
      '--device',
      args.device,
      '--threads',
      args.threads,
      '--max-num-batched-tokens',
      '8192',
      '--log-level',
      'warn',
      ...serveExtra,
    ]);
    url = `http://127.0.0.1:${port}`;
    const exited = server.exited.then((code) => {
      throw new Error(`kvserve serve exited (${code}): ${server.stderr()}${server.stdout()}`);
    });
    await Promise.race([untilHealthy(url, 600_000), exited]);
  }
  const model = ((await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> }).data[0]!.id;
  const tokenizer = await TextTokenizer.forModel(config.tokenizer, {
    dummy: loadFormat === 'dummy',
    configPath: config.model.endsWith('.json') ? config.model : join(config.model, 'config.json'),
  });

  console.log(`TTFT at concurrency 1 on ${url} (${model}, ${args.device}): median of ${N} requests per row, ms`);
  console.log(
    'client: sent → first content chunk (whole: → the whole answer); server: arrival → first token; queue: arrival →',
  );
  console.log('first scheduled; step: its engine step, launch → result; loop = server − queue − step; client − step:');
  console.log('all that is not the engine step, as the client sees it\n');
  const header = ['prompt', 'request', 'client', 'server', 'queue', 'step', 'loop', 'client − server', 'client − step'];
  const table: string[][] = [];
  for (const [li, len] of lens.entries()) {
    // One fresh prompt per request and row; ids are the text's encoding (BOS included, as the server adds it).
    const prompts = ROWS.map((row, ri) => {
      const texts = randomDataset(
        {
          numPrompts: N + WARMUP,
          inputLen: len,
          outputLen: 1,
          rangeRatio: 0,
          seed: Number(args.seed) + 1000 * li + ri,
        },
        tokenizer,
      ).requests.map((r) => r.prompt);
      return row.kind === 'text' ? texts : texts.map((t) => tokenizer.encode(t, true));
    });
    const samples: Sample[][] = ROWS.map(() => []);
    // Rows interleaved request by request, so that a slow spell of the machine is shared by all of them.
    for (let i = 0; i < N + WARMUP; i++) {
      for (const [ri, row] of ROWS.entries()) {
        const s = await measure(url, model, row, prompts[ri]![i]!);
        if (i >= WARMUP) samples[ri]!.push(s);
      }
    }
    for (const [ri, row] of ROWS.entries()) {
      const s = samples[ri]!;
      table.push([
        String(len),
        label(row),
        ms(median(s.map((x) => x.client))),
        ms(median(s.map((x) => x.ttft))),
        ms(median(s.map((x) => x.queue))),
        ms(median(s.map((x) => x.step))),
        ms(median(s.map((x) => x.ttft - x.queue - x.step))),
        ms(median(s.map((x) => x.client - x.ttft))),
        ms(median(s.map((x) => x.client - x.step))),
      ]);
    }
  }
  const widths = header.map((h, c) => Math.max(h.length, ...table.map((r) => r[c]!.length)));
  const line = (cells: string[]) =>
    cells.map((x, c) => (c < 2 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!))).join('  ');
  console.log(line(header));
  for (const r of table) console.log(line(r));
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => {
    agent.destroy();
    killChildren();
  });
