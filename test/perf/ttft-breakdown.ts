// The server's own share of TTFT at concurrency 1: TTFT as the client sees it minus the engine's own time for the
// first step (kvserve_engine_native_step_seconds: the step on the engine thread), for /v1/completions and
// /v1/chat/completions, streamed and not, token ids and text, max_tokens 1 (and 16 streamed, where the next step
// is launched before the first token is delivered). Fresh random prompts (the prefix cache never hits), one request
// at a time, sent by a minimal node:http client (keep-alive, the first content chunk timed in the socket's 'data'
// callback) and, for one row, by `kvserve bench`'s own client. After every request the server's /metrics gives
// that request's own figures (deltas of the histogram sums), which split the overhead three ways:
//   outside  = client − server TTFT: the client, the kernel both ways, HTTP parsing and routing up to the first
//              hook; after the first token: detokenizing, the SSE (or JSON) write;
//   queue    = arrival → first scheduled: body parsing, validation, tokenizing and the chat template, admission;
//   dispatch = server TTFT − queue − engine: building and launching the step, the hand-offs to the engine thread
//              and back, applying the result and handing the token to the request.
// The floor column is the same client against a bare node:http server (no framework, no engine) whose "step" is a
// worker thread busy for the engine time just measured, answering in the same shape: what this machine's HTTP and
// thread hand-offs cost with no server logic at all. Each figure is the median over the requests of a row, each
// difference the median of the per-request differences; rows (and servers, each first in every other round) take
// turns request by request, so a slow spell of a shared machine is shared by all of them.
// A benchmark, not a test: it prints a table.
//   npx tsx test/perf/ttft-breakdown.ts                                      # CPU, models/stories260K, 128 tokens
//   npx tsx test/perf/ttft-breakdown.ts --model configs/llama-tiny.json --lens 128,2048
//   npx tsx test/perf/ttft-breakdown.ts --model configs/llama-3-8b.json --device cuda --threads 0 -- --max-model-len 4096
//   npx tsx test/perf/ttft-breakdown.ts --base-url http://127.0.0.1:8011,http://127.0.0.1:8012  # two servers, A/B
// Without --base-url it starts `kvserve serve` (the current source, as the server tests do) on a free port with
// --max-num-batched-tokens 8192 (one step per prompt) and --log-level warn; flags after `--` go to it too.
// --model (and --load-format, dummy for a .json preset) say which tokenizer builds the prompts. Chat rows are left
// out for a model without a chat template.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomDataset } from '../../src/bench/dataset-random.js';
import { type Endpoint, streamRequest } from '../../src/bench/stream-request.js';
import { finishServerConfig, type ServerConfig, serverDefaults } from '../../src/config.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { killChildren, spawnServe, untilHealthy } from '../server/helpers/child-server.js';
import { metricValues } from '../server/helpers/disconnect.js';

const { values: args, positionals: serveExtra } = parseArgs({
  allowPositionals: true,
  options: {
    'base-url': { type: 'string' },
    model: { type: 'string', default: 'models/stories260K' },
    'load-format': { type: 'string' },
    device: { type: 'string', default: 'cpu' },
    threads: { type: 'string', default: '1' },
    lens: { type: 'string', default: '128' },
    requests: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '5' },
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
  endpoint: Endpoint;
  kind: Kind;
  stream: boolean;
  maxTokens: number;
  client: 'raw' | 'bench';
}
const CMPL: Endpoint = '/v1/completions';
const CHAT: Endpoint = '/v1/chat/completions';
const ALL_ROWS: Row[] = [
  { endpoint: CMPL, kind: 'ids', stream: true, maxTokens: 1, client: 'raw' },
  { endpoint: CMPL, kind: 'ids', stream: false, maxTokens: 1, client: 'raw' },
  { endpoint: CMPL, kind: 'text', stream: true, maxTokens: 1, client: 'raw' },
  { endpoint: CMPL, kind: 'text', stream: false, maxTokens: 1, client: 'raw' },
  { endpoint: CHAT, kind: 'text', stream: true, maxTokens: 1, client: 'raw' },
  { endpoint: CHAT, kind: 'text', stream: false, maxTokens: 1, client: 'raw' },
  { endpoint: CMPL, kind: 'text', stream: true, maxTokens: 1, client: 'bench' },
  { endpoint: CMPL, kind: 'ids', stream: true, maxTokens: 16, client: 'raw' },
];
const label = (r: Row) =>
  `${r.endpoint === CHAT ? 'chat' : 'cmpl'} ${r.kind}, ${r.stream ? 'stream' : 'whole'}, max ${r.maxTokens}` +
  (r.client === 'bench' ? ', bench client' : '');

/** What one request measured, in ms; NaN where the server does not say (or, for max_tokens > 1, cannot). */
interface Sample {
  client: number; // request sent → first content chunk (streamed) or the whole answer (not streamed)
  ttft: number; // server: arrival → first token
  queue: number; // server: arrival → first scheduled
  engine: number; // server: the first step on the engine thread (max_tokens 1 only: its one step)
  floor: number; // the bare server's client time less its busy time, for the same busy time and shape
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** The minimal client: POST, then the time of the first SSE event with text (or of the end, not streamed). */
function rawRequest(url: URL, path: string, body: string, stream: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first = 0;
    let pending = '';
    const req = http.request(
      url,
      {
        method: 'POST',
        path,
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
            const chunk = JSON.parse(event.slice(6)) as {
              choices?: Array<{ text?: string; delta?: { content?: string } }>;
            };
            const c = chunk.choices?.[0];
            if (c?.text || c?.delta?.content) first = performance.now();
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

function requestBody(model: string, row: Row, prompt: string | number[]): object {
  const common = { model, max_tokens: row.maxTokens, temperature: 0, ignore_eos: true, stream: row.stream };
  return row.endpoint === CHAT ? { ...common, messages: [{ role: 'user', content: prompt }] } : { ...common, prompt };
}

const METRICS = [
  'vllm:time_to_first_token_seconds_sum',
  'vllm:request_queue_time_seconds_sum',
  'kvserve_engine_native_step_seconds_sum',
];

async function serverTotals(url: string): Promise<number[]> {
  return (await metricValues(url, METRICS)).map((v) => (v === undefined ? Number.NaN : v * 1000));
}

async function measure(server: Server, row: Row, prompt: string | number[], floorUrl: URL): Promise<Sample> {
  const { url, model } = server;
  const before = await serverTotals(url);
  let client: number;
  if (row.client === 'bench') {
    const cfg = { baseUrl: url, endpoint: row.endpoint, model, apiKey: undefined, ignoreEos: true };
    const o = await streamRequest(cfg, { prompt: prompt as string, promptLen: 0, outputLen: row.maxTokens }, 0);
    if (!o.success) throw new Error(`${label(row)}: ${o.error}`);
    client = o.ttft * 1000;
  } else {
    client = await rawRequest(new URL(url), row.endpoint, JSON.stringify(requestBody(model, row, prompt)), row.stream);
  }
  const after = await serverTotals(url);
  const [ttft, queue, engine] = after.map((v, i) => v - before[i]!);
  const busy = row.maxTokens === 1 ? engine! : Number.NaN;
  let floor = Number.NaN;
  if (!Number.isNaN(busy)) {
    const body = JSON.stringify({ busy_ms: busy, stream: row.stream });
    floor = (await rawRequest(floorUrl, row.endpoint, body, row.stream)) - busy;
  }
  return { client, ttft: ttft!, queue: queue!, engine: busy, floor };
}

// The bare server: node:http, the body parsed, a worker thread spinning for busy_ms, then one content chunk and
// [DONE] (streamed: after the headers, written at once as kvserve writes them) or one JSON answer.
const FLOOR_SERVER = `
import http from 'node:http';
import { Worker } from 'node:worker_threads';
const worker = new Worker(
  "const { parentPort } = require('node:worker_threads');" +
  "parentPort.on('message', (ms) => { const end = performance.now() + ms; while (performance.now() < end); parentPort.postMessage(0); });",
  { eval: true, execArgv: [] },
);
let done;
worker.on('message', () => done());
const server = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const { busy_ms, stream } = JSON.parse(body);
    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
      res.flushHeaders();
    }
    done = () => {
      const choice = { index: 0, text: 'x', delta: { content: 'x' }, finish_reason: 'length' };
      if (stream) res.end('data: ' + JSON.stringify({ choices: [choice] }) + '\\n\\ndata: [DONE]\\n\\n');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ choices: [choice] }));
    };
    worker.postMessage(busy_ms);
  });
});
server.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'));
`;

async function startFloor(): Promise<URL> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--input-type=module', '-e', FLOOR_SERVER, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  floorChild = child;
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the floor server exited (${code})`)));
  });
  return new URL(`http://127.0.0.1:${port}`);
}
let floorChild: ReturnType<typeof spawn> | undefined;

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

interface Server {
  url: string;
  model: string;
}

async function startServer(): Promise<string> {
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
  const url = `http://127.0.0.1:${port}`;
  const exited = server.exited.then((code) => {
    throw new Error(`kvserve serve exited (${code}): ${server.stderr()}${server.stdout()}`);
  });
  await Promise.race([untilHealthy(url, 600_000), exited]);
  return url;
}

/** Whether the server renders chat prompts for its model (a model without a chat template answers 400). */
async function servesChat(s: Server): Promise<boolean> {
  const res = await fetch(`${s.url}${CHAT}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: s.model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }),
  });
  return res.status === 200;
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!;
};
const ms = (x: number) => (Number.isNaN(x) ? '—' : x.toFixed(2));

async function main() {
  const urls = args['base-url'] ? args['base-url'].split(',') : [await startServer()];
  const servers: Server[] = [];
  for (const url of urls) {
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    servers.push({ url, model: models.data[0]!.id });
  }
  const floorUrl = await startFloor();
  const tokenizer = await TextTokenizer.forModel(config.tokenizer, {
    dummy: loadFormat === 'dummy',
    configPath: config.model.endsWith('.json') ? config.model : join(config.model, 'config.json'),
  });
  const chat = (await Promise.all(servers.map(servesChat))).every(Boolean);
  const rows = ALL_ROWS.filter((r) => chat || r.endpoint !== CHAT);

  console.log(
    `TTFT at concurrency 1 (${args.model}, ${args.device}): median of ${N} requests per row, ms. client: sent → first`,
  );
  console.log(
    'content chunk (whole: → the whole answer); engine: the step on the engine thread; overhead = client − engine =',
  );
  console.log(
    'outside (client − server TTFT) + queue (arrival → scheduled) + dispatch (scheduled → first token − engine);',
  );
  console.log('floor: a bare node:http server with a worker busy for the same engine time, its client time − that');
  if (!chat) console.log('(no chat rows: the model has no chat template)');
  const header = ['prompt', 'request', 'client', 'engine', 'overhead', 'outside', 'queue', 'dispatch', 'floor'];
  const tables: string[][][] = servers.map(() => []);
  for (const [li, len] of lens.entries()) {
    // One fresh prompt per request, row and server; ids are the text's encoding (BOS included, as the server adds).
    const prompts = rows.map((row, ri) =>
      servers.map((_, si) => {
        const texts = randomDataset(
          {
            numPrompts: N + WARMUP,
            inputLen: len,
            outputLen: 1,
            rangeRatio: 0,
            seed: Number(args.seed) + 1000 * li + 100 * si + ri,
          },
          tokenizer,
        ).requests.map((r) => r.prompt);
        return row.kind === 'text' ? texts : texts.map((t) => tokenizer.encode(t, true));
      }),
    );
    const samples: Sample[][][] = servers.map(() => rows.map(() => []));
    // Servers in turn, each first in every other round: the one that goes second is not always the same.
    const order = servers.map((_, si) => si);
    for (let i = 0; i < N + WARMUP; i++) {
      for (const [ri, row] of rows.entries()) {
        for (const si of i % 2 === 0 ? order : [...order].reverse()) {
          const s = await measure(servers[si]!, row, prompts[ri]![si]![i]!, floorUrl);
          if (i >= WARMUP) samples[si]![ri]!.push(s);
        }
      }
    }
    for (const [si] of servers.entries()) {
      for (const [ri, row] of rows.entries()) {
        const s = samples[si]![ri]!;
        tables[si]!.push([
          String(len),
          label(row),
          ms(median(s.map((x) => x.client))),
          ms(median(s.map((x) => x.engine))),
          ms(median(s.map((x) => x.client - x.engine))),
          ms(median(s.map((x) => x.client - x.ttft))),
          ms(median(s.map((x) => x.queue))),
          ms(median(s.map((x) => x.ttft - x.queue - x.engine))),
          ms(median(s.map((x) => x.floor))),
        ]);
      }
    }
  }
  for (const [si, server] of servers.entries()) {
    const table = tables[si]!;
    const widths = header.map((h, c) => Math.max(h.length, ...table.map((r) => r[c]!.length)));
    const line = (cells: string[]) =>
      cells.map((x, c) => (c < 2 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!))).join('  ');
    console.log(`\n${server.url} (${server.model})`);
    console.log(line(header));
    for (const r of table) console.log(line(r));
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => {
    agent.destroy();
    floorChild?.kill();
    killChildren();
  });
