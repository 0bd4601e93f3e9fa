// One streamed request, timed as vLLM's `bench serve` times it so that results compare:
//   TTFT    = request sent → first chunk carrying content (text, or delta.content / reasoning for chat);
//   ITL     = gaps between consecutive content chunks (a chunk may hold several tokens);
//   latency = request sent → last content chunk (E2EL; the usage chunk and [DONE] do not count).
// Times come from performance.now() (monotonic). A request succeeds when the status is 200, at least one content
// chunk arrived and the stream ended with `data: [DONE]`; anything else is a failure with a message.
// The client is node:http(s) with keep-alive agents, not fetch: a chunk is timed in the socket's own 'data'
// callback (the SSE parser is synchronous), where fetch's web streams add their promise hops and about half a
// millisecond per request on each end of the exchange to what would be reported as the server's TTFT.
import http from 'node:http';
import https from 'node:https';
import { createParser } from 'eventsource-parser';
import type { BenchRequest, RequestOutput } from './types.js';

export type Endpoint = '/v1/completions' | '/v1/chat/completions';

export interface EndpointConfig {
  baseUrl: string;
  endpoint: Endpoint;
  model: string;
  apiKey: string | undefined;
  ignoreEos: boolean;
}

interface StreamChunk {
  choices?: Array<{ text?: unknown; delta?: { content?: unknown; reasoning_content?: unknown; reasoning?: unknown } }>;
  usage?: { completion_tokens?: unknown; prompt_tokens?: unknown } | null;
  error?: { message?: unknown } | string;
}

/** The request body: greedy, streamed, usage asked for, and the vLLM `ignore_eos` extension when asked. */
export function requestBody(cfg: EndpointConfig, req: BenchRequest): Record<string, unknown> {
  const common: Record<string, unknown> = {
    model: cfg.model,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (cfg.ignoreEos) common.ignore_eos = true;
  if (cfg.endpoint === '/v1/chat/completions') {
    return {
      ...common,
      messages: [{ role: 'user', content: req.prompt }],
      max_completion_tokens: req.outputLen,
      max_tokens: req.outputLen, // servers that predate max_completion_tokens read this one
    };
  }
  return { ...common, prompt: req.prompt, max_tokens: req.outputLen };
}

export function authHeaders(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

/** Sends `req` and measures it. Never throws: every failure is reported in the output. */
export async function streamRequest(
  cfg: EndpointConfig,
  req: BenchRequest,
  benchStartMs: number,
): Promise<RequestOutput> {
  const out: RequestOutput = {
    success: false,
    error: '',
    generatedText: '',
    promptLen: req.promptLen,
    usageOutputTokens: undefined,
    usagePromptTokens: undefined,
    ttft: 0,
    itl: [],
    latency: 0,
    startTime: 0,
    contentChunks: 0,
  };
  const body = JSON.stringify(requestBody(cfg, req));
  const st = performance.now();
  out.startTime = (st - benchStartMs) / 1000;
  let lastContentAt = st;
  let done = false;
  let streamError = '';

  const parser = createParser({
    onEvent(event) {
      if (done || streamError) return;
      if (event.data === '[DONE]') {
        done = true;
        return;
      }
      const now = performance.now();
      let chunk: StreamChunk;
      try {
        chunk = JSON.parse(event.data) as StreamChunk;
      } catch {
        streamError = `invalid JSON in stream: ${event.data.slice(0, 200)}`;
        return;
      }
      if (chunk.error !== undefined) {
        streamError = `error in stream: ${typeof chunk.error === 'string' ? chunk.error : String(chunk.error.message ?? JSON.stringify(chunk.error))}`;
        return;
      }
      const content = chunkContent(chunk);
      if (content !== '') {
        if (out.contentChunks === 0) out.ttft = (now - st) / 1000;
        else out.itl.push((now - lastContentAt) / 1000);
        lastContentAt = now;
        out.contentChunks++;
        out.generatedText += content;
      }
      if (chunk.usage) {
        if (typeof chunk.usage.completion_tokens === 'number') out.usageOutputTokens = chunk.usage.completion_tokens;
        if (typeof chunk.usage.prompt_tokens === 'number') out.usagePromptTokens = chunk.usage.prompt_tokens;
      }
    },
  });

  const failed = await post(endpointUrl(cfg.baseUrl, cfg.endpoint), body, cfg.apiKey, {
    onStatus: (status, text) => {
      out.error = `HTTP ${status}: ${text}`;
    },
    onText: (text) => {
      parser.feed(text);
      return streamError === '';
    },
  });
  if (failed !== undefined && !out.error && !streamError) {
    streamError = out.contentChunks > 0 ? `stream broken after ${out.contentChunks} content chunks: ${failed}` : failed;
  }
  if (out.error) return out;

  out.latency = (lastContentAt - st) / 1000;
  if (streamError) out.error = streamError;
  else if (out.contentChunks === 0) out.error = 'no content chunk received, so no TTFT';
  else if (!done) out.error = `stream ended without data: [DONE] after ${out.contentChunks} content chunks`;
  else out.success = true;
  return out;
}

/** Connections are kept and reused across requests (as vLLM's aiohttp session does), one pool per protocol. */
const agents = {
  'http:': new http.Agent({ keepAlive: true }),
  'https:': new https.Agent({ keepAlive: true }),
};

/** A request that gets no byte for this long fails (fetch's default header and body timeouts). */
const IDLE_TIMEOUT_MS = 300_000;

interface PostHandlers {
  /** A status other than 200, with the error body's message. */
  onStatus(status: number, text: string): void;
  /** Each piece of a 200 response's body as it arrives; false stops reading (the connection is dropped). */
  onText(text: string): boolean;
}

/** POSTs `body` as JSON and streams the answer to `on`. Resolves when it ended: undefined when the response was
 *  complete (or `onText` stopped it), else why it broke off. Never rejects. */
function post(url: string, body: string, apiKey: string | undefined, on: PostHandlers): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (why: string | undefined) => {
      if (settled) return;
      settled = true;
      resolve(why);
    };
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      settle(`invalid URL ${url}`);
      return;
    }
    const client = target.protocol === 'https:' ? https : http;
    const agent = agents[target.protocol as keyof typeof agents];
    if (!agent) {
      settle(`unsupported protocol ${target.protocol} in ${url}`);
      return;
    }
    const req = client.request(
      target,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          'content-length': Buffer.byteLength(body),
          ...authHeaders(apiKey),
        },
      },
      (res) => {
        res.setEncoding('utf8');
        const status = res.statusCode ?? 0;
        let errorBody = '';
        let stopped = false;
        res.on('data', (text: string) => {
          if (stopped) return;
          if (status !== 200) {
            if (errorBody.length < 65536) errorBody += text;
            return;
          }
          if (!on.onText(text)) {
            stopped = true;
            req.destroy();
            settle(undefined);
          }
        });
        res.on('end', () => {
          if (status !== 200) on.onStatus(status, errorText(errorBody, res.statusMessage ?? ''));
          settle(undefined);
        });
        res.on('error', (e) => settle(e.message));
        res.on('close', () => settle('the connection closed before the response ended'));
      },
    );
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no answer for ${IDLE_TIMEOUT_MS / 1000} s`)));
    req.on('error', (e) => settle(connectionError(e)));
    req.end(body);
  });
}

/** A connection error as one line: the system error's code and address when there is one. */
function connectionError(e: Error): string {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  if (err.code === 'ECONNREFUSED') return `connection refused by ${err.address}:${err.port} (ECONNREFUSED)`;
  return err.code && !err.message.includes(err.code) ? `${err.message} (${err.code})` : err.message;
}

function chunkContent(chunk: StreamChunk): string {
  const choice = chunk.choices?.[0];
  if (!choice) return '';
  if (typeof choice.text === 'string') return choice.text;
  const d = choice.delta;
  if (!d) return '';
  for (const v of [d.content, d.reasoning_content, d.reasoning]) if (typeof v === 'string' && v !== '') return v;
  return '';
}

/** The message of an OpenAI-style error body, else the body's start, else the status text. */
function errorText(body: string, statusText: string): string {
  try {
    const j = JSON.parse(body) as { error?: { message?: string } | string; message?: string };
    const m = typeof j.error === 'string' ? j.error : (j.error?.message ?? j.message);
    if (m) return m;
  } catch {
    /* not JSON */
  }
  return body.trim().slice(0, 300) || statusText;
}

/** base + path as vLLM joins them (`--base-url http://host:8000` + `/v1/completions`), base path kept. */
export function endpointUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/\/+$/, '') + path;
}
