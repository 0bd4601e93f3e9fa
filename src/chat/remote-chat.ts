// `kvserve chat --base-url URL`: the same conversation against any running OpenAI-compatible server,
// streamed from /v1/chat/completions (stream: true) and read event by event.
import { EventSourceParserStream } from 'eventsource-parser/stream';
import type { SamplingFlagValues } from '../sampling-flags.js';
import { ChatError, type ChatBackend, type ChatMessage } from './chat-backend.js';

interface Chunk {
  choices?: Array<{ delta?: { content?: unknown } }>;
  error?: { message?: unknown };
}

export class RemoteChat implements ChatBackend {
  readonly description: string;

  private constructor(
    private readonly baseUrl: string,
    private readonly model: string,
    private readonly apiKey: string | undefined,
    private readonly sampling: SamplingFlagValues,
  ) {
    this.description = `${model} at ${baseUrl}`;
  }

  /** Asks /v1/models which model the server serves (the first one); fails with one line when it cannot. */
  static async open(baseUrl: string, apiKey: string | undefined, sampling: SamplingFlagValues): Promise<RemoteChat> {
    const base = baseUrl.replace(/\/+$/, '');
    let res: Response;
    try {
      res = await fetch(`${base}/v1/models`, { headers: headers(apiKey) });
    } catch (e) {
      throw new ChatError(
        `cannot reach ${base}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`,
      );
    }
    if (!res.ok) throw new ChatError(`${base}/v1/models: ${await errorText(res)}`);
    const list = (await res.json()) as { data?: Array<{ id?: unknown }> };
    const id = list.data?.[0]?.id;
    if (typeof id !== 'string') throw new ChatError(`${base}/v1/models lists no model`);
    return new RemoteChat(base, id, apiKey, sampling);
  }

  async *reply(messages: ChatMessage[], signal: AbortSignal): AsyncGenerator<string> {
    const s = this.sampling;
    const body = {
      model: this.model,
      messages,
      stream: true,
      temperature: s.temperature,
      top_p: s.topP,
      max_tokens: s.maxTokens,
      ...(s.topK > 0 ? { top_k: s.topK } : {}),
      ...(s.minP > 0 ? { min_p: s.minP } : {}),
      ...(s.samplingSeed >= 0 ? { seed: s.samplingSeed } : {}),
    };
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...headers(this.apiKey), 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (signal.aborted) return;
      throw new ChatError(
        `cannot reach ${this.baseUrl}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`,
      );
    }
    if (!res.ok || !res.body) throw new ChatError(await errorText(res));
    const events = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
    try {
      for await (const event of events) {
        if (event.data === '[DONE]') return;
        const chunk = JSON.parse(event.data) as Chunk;
        if (chunk.error) throw new ChatError(String(chunk.error.message ?? 'the server reported an error'));
        const piece = chunk.choices?.[0]?.delta?.content;
        if (typeof piece === 'string' && piece) yield piece;
      }
    } catch (e) {
      if (signal.aborted) return; // Ctrl-C: the fetch is cancelled, what was shown stays
      throw e;
    }
    throw new ChatError('the stream ended without [DONE]');
  }

  async close(): Promise<void> {}
}

function headers(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

/** The OpenAI error envelope's message, or the status line. */
async function errorText(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const m = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    if (typeof m === 'string') return m;
  } catch {
    // not JSON: fall through
  }
  return `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
}
