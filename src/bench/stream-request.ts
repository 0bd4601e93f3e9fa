// One streamed request, timed as vLLM's `bench serve` times it so that results compare:
//   TTFT    = request sent → first chunk carrying content (text, or delta.content / reasoning for chat);
//   ITL     = gaps between consecutive content chunks (a chunk may hold several tokens);
//   latency = request sent → last content chunk (E2EL; the usage chunk and [DONE] do not count).
// Times come from performance.now() (monotonic). A request succeeds when the status is 200, at least one content
// chunk arrived and the stream ended with `data: [DONE]`; anything else is a failure with a message.
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

  try {
    const res = await fetch(endpointUrl(cfg.baseUrl, cfg.endpoint), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...authHeaders(cfg.apiKey) },
      body,
    });
    if (res.status !== 200 || !res.body) {
      out.error = `HTTP ${res.status}: ${errorText(await res.text().catch(() => ''), res.statusText)}`;
      return out;
    }
    const decoder = new TextDecoder();
    const reader = res.body.getReader();
    for (;;) {
      const { value, done: eof } = await reader.read();
      if (eof) break;
      parser.feed(decoder.decode(value, { stream: true }));
      if (streamError) {
        await reader.cancel().catch(() => undefined);
        break;
      }
    }
    parser.feed(decoder.decode());
  } catch (e) {
    const cause = (e as { cause?: { message?: string; code?: string } }).cause;
    streamError = `${(e as Error).message}${cause?.message ? ` (${cause.message})` : cause?.code ? ` (${cause.code})` : ''}`;
    if (out.contentChunks > 0) streamError = `stream broken after ${out.contentChunks} content chunks: ${streamError}`;
  }

  out.latency = (lastContentAt - st) / 1000;
  if (streamError) out.error = streamError;
  else if (out.contentChunks === 0) out.error = 'no content chunk received, so no TTFT';
  else if (!done) out.error = `stream ended without data: [DONE] after ${out.contentChunks} content chunks`;
  else out.success = true;
  return out;
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
