// A scripted OpenAI-compatible SSE server for the bench tests: known delays, so the client's measured TTFT, ITL,
// TPOT and E2EL can be checked against them. Chunk k (0-based) is written at receive + first + k·inter, on
// absolute deadlines so timer lateness never accumulates. It records what it saw: request bodies, arrival times
// and the largest number of requests in flight at once.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Script {
  firstDelayMs: number;
  interChunkMs: number;
  /** content chunks to send */
  chunks: number;
  /** completion_tokens in the usage chunk = chunks × tokensPerChunk */
  tokensPerChunk?: number;
  /** send the usage chunk when the client asks for it (stream_options.include_usage) */
  usage?: boolean;
  /** chat only: a role-only chunk (no content) at once, as many servers send first */
  roleChunk?: boolean;
  /** answer with this status and an OpenAI error body instead of a stream */
  status?: number;
  /** the error body's message with `status` (default "scripted failure STATUS") */
  errorMessage?: string;
  /** destroy the connection after this many content chunks */
  breakAfter?: number;
  /** end the response cleanly without data: [DONE] */
  omitDone?: boolean;
}

export interface Seen {
  path: string;
  body: Record<string, unknown>;
  /** performance.now() when the request arrived */
  receivedAt: number;
}

export interface ScriptedServer {
  baseUrl: string;
  seen: Seen[];
  maxInFlight: () => number;
  close: () => Promise<void>;
}

/** `script` may depend on the request's index in arrival order (0-based) and on its body (e.g. the prompt). */
export async function startScriptedServer(
  script: Script | ((index: number, body: Record<string, unknown>) => Script),
): Promise<ScriptedServer> {
  const seen: Seen[] = [];
  let inFlight = 0;
  let maxInFlight = 0;

  const server = createServer({ noDelay: true }, (req, res) => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'scripted-model', object: 'model' }] }));
      return;
    }
    const receivedAt = performance.now();
    readBody(req).then((raw) => {
      const body = JSON.parse(raw) as Record<string, unknown>;
      const index = seen.length;
      seen.push({ path: req.url ?? '', body, receivedAt });
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.on('close', () => inFlight--);
      respond(
        typeof script === 'function' ? script(index, body) : script,
        req.url === '/v1/chat/completions',
        body,
        receivedAt,
        res,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    seen,
    maxInFlight: () => maxInFlight,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function respond(s: Script, chat: boolean, body: Record<string, unknown>, t0: number, res: ServerResponse): void {
  if (s.status !== undefined && s.status !== 200) {
    res.writeHead(s.status, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        error: { message: s.errorMessage ?? `scripted failure ${s.status}`, type: 'server_error', code: s.status },
      }),
    );
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const id = `cmpl-${Math.random().toString(36).slice(2)}`;
  const send = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
  const choice = (text: string, role = false) =>
    chat
      ? { index: 0, delta: role ? { role: 'assistant', content: '' } : { content: text }, finish_reason: null }
      : { index: 0, text, finish_reason: null };
  if (chat && s.roleChunk) send({ id, choices: [choice('', true)] });

  let k = 0;
  const next = () => {
    if (res.destroyed) return;
    if (s.breakAfter !== undefined && k === s.breakAfter) {
      res.destroy();
      return;
    }
    if (k < s.chunks) {
      send({ id, object: chat ? 'chat.completion.chunk' : 'text_completion', choices: [choice(` w${k}`)] });
      k++;
      schedule(k < s.chunks ? t0 + s.firstDelayMs + k * s.interChunkMs : performance.now());
      return;
    }
    const wantsUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    if (s.usage && wantsUsage) {
      const completion = s.chunks * (s.tokensPerChunk ?? 1);
      send({
        id,
        choices: [],
        usage: { prompt_tokens: 7, completion_tokens: completion, total_tokens: 7 + completion },
      });
    }
    if (!s.omitDone) res.write('data: [DONE]\n\n');
    res.end();
  };
  const schedule = (deadline: number) => setTimeout(next, Math.max(0, deadline - performance.now()));
  schedule(t0 + s.firstDelayMs);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (data += c));
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}
