// The Responses API's shapes: the response object, its one output message, and the streamed event sequence
// OpenAI sends for a text answer (created → in_progress → output_item.added → content_part.added →
// output_text.delta… → output_text.done → content_part.done → output_item.done → completed), each event
// with its sequence_number.
import type { ApiError } from './errors.js';
import type { ChoiceResult, LogprobEntry } from './generation.js';
import type { SseWriter } from './sse.js';
import { tokenLogprobs } from './token-text.js';

/** What the response object echoes of the request. */
export interface ResponseEcho {
  id: string;
  model: string;
  createdAt: number;
  instructions: string | null;
  maxOutputTokens: number | null;
  temperature: number;
  topP: number;
  metadata: Record<string, string>;
  user: string | null;
  /** text.format as the request gave it (json_schema / json_object constrain the output). */
  textFormat?: object;
}

type Status = 'in_progress' | 'completed' | 'incomplete' | 'failed';

export function outputText(text: string, logprobs: LogprobEntry[] = []) {
  return { type: 'output_text', text, annotations: [], logprobs: tokenLogprobs(logprobs, false) };
}

export function outputMessage(
  id: string,
  status: 'in_progress' | 'completed' | 'incomplete',
  text: string | undefined,
  logprobs: LogprobEntry[] = [],
) {
  return {
    id,
    type: 'message',
    status,
    role: 'assistant',
    content: text === undefined ? [] : [outputText(text, logprobs)],
  };
}

function usage(r: ChoiceResult) {
  return {
    input_tokens: r.numPromptTokens,
    input_tokens_details: { cached_tokens: r.numCachedTokens },
    output_tokens: r.numOutputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: r.numPromptTokens + r.numOutputTokens,
  };
}

/** A finished answer is "incomplete" when it ran out of tokens, as OpenAI reports max_output_tokens. */
export const finalStatus = (r: ChoiceResult): 'completed' | 'incomplete' =>
  r.finishReason === 'length' ? 'incomplete' : 'completed';

export function responseObject(
  echo: ResponseEcho,
  status: Status,
  output: object[],
  result?: ChoiceResult,
  error?: ApiError,
) {
  return {
    id: echo.id,
    object: 'response',
    created_at: echo.createdAt,
    status,
    background: false,
    error: error ? { code: error.code, message: error.message } : null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: echo.instructions,
    max_output_tokens: echo.maxOutputTokens,
    model: echo.model,
    output,
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    service_tier: 'default',
    store: false,
    temperature: echo.temperature,
    text: { format: echo.textFormat ?? { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: echo.topP,
    truncation: 'disabled',
    usage: result ? usage(result) : null,
    user: echo.user,
    metadata: echo.metadata,
  };
}

/** The event sequence of one streamed answer, numbered from 0. */
export class ResponseEvents {
  private seq = 0;
  private text = '';
  private readonly at = { output_index: 0, content_index: 0 };

  constructor(
    private readonly sse: SseWriter,
    private readonly echo: ResponseEcho,
    private readonly messageId: string,
  ) {}

  private emit(type: string, fields: object): void {
    this.sse.event(type, { type, sequence_number: this.seq++, ...fields });
  }

  start(): void {
    this.emit('response.created', { response: responseObject(this.echo, 'in_progress', []) });
    this.emit('response.in_progress', { response: responseObject(this.echo, 'in_progress', []) });
    this.emit('response.output_item.added', {
      output_index: 0,
      item: outputMessage(this.messageId, 'in_progress', undefined),
    });
    this.emit('response.content_part.added', { item_id: this.messageId, ...this.at, part: outputText('') });
  }

  delta(text: string, logprobs: LogprobEntry[]): void {
    this.text += text;
    this.emit('response.output_text.delta', {
      item_id: this.messageId,
      ...this.at,
      delta: text,
      logprobs: tokenLogprobs(logprobs, false),
    });
  }

  finish(result: ChoiceResult): void {
    const status = finalStatus(result);
    const item = outputMessage(this.messageId, status, this.text, result.logprobs);
    this.emit('response.output_text.done', {
      item_id: this.messageId,
      ...this.at,
      text: this.text,
      logprobs: tokenLogprobs(result.logprobs, false),
    });
    this.emit('response.content_part.done', {
      item_id: this.messageId,
      ...this.at,
      part: outputText(this.text, result.logprobs),
    });
    this.emit('response.output_item.done', { output_index: 0, item });
    const type = status === 'completed' ? 'response.completed' : 'response.incomplete';
    this.emit(type, { response: responseObject(this.echo, status, [item], result) });
  }

  /** The engine failed after the stream began (the status is already 200): OpenAI's error event. */
  error(err: ApiError): void {
    this.emit('error', { code: err.code, message: err.message, param: err.param });
  }
}
