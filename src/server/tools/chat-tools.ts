// Tool calling for one chat request: the format (from --tool-call-parser or the chat template), the grammar
// that makes tool_choice "required" or a named function a valid call even from a model that never saw tools,
// the prompt, and the reply: OpenAI's message with tool_calls, or the stream of tool_calls deltas.
import type { GrammarSpec } from '../../grammar/grammar-spec.js';
import type { TemplateMessage } from '../../tokenizer/chat-template.js';
import type { ChoiceResult } from '../generation.js';
import type { LoadedModel } from '../model-slot.js';
import { ToolCallParser, type ToolCallEvent } from './tool-call-parser.js';
import { detectToolFormat, TOOL_FORMATS, type ToolFormat, templateKnowsTools } from './tool-formats.js';
import { toolPrompt } from './tool-prompt.js';
import { callableTools, type ToolRequest } from './tool-request.js';

export interface ToolCallOut {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

type Finish = ChoiceResult['finishReason'] | 'tool_calls';

export class ChatTools {
  readonly format: ToolFormat;
  private readonly rendersTools: boolean;
  private readonly names: Set<string>;

  /** `request` undefined: no tools (or tool_choice "none"); earlier calls in the messages still render. */
  constructor(
    model: LoadedModel,
    readonly request: ToolRequest | undefined,
  ) {
    const source = model.chatTemplate?.source;
    const flag = model.toolCallParser ?? 'auto';
    this.format = TOOL_FORMATS[flag === 'auto' ? detectToolFormat(source) : flag];
    this.rendersTools = templateKnowsTools(source);
    this.names = new Set(request?.tools.map((t) => t.name));
  }

  /** The grammar of the calls when the model must call (required, or a named function). */
  grammar(): GrammarSpec | undefined {
    const r = this.request;
    if (!r || r.choice === 'auto') return undefined;
    return this.format.grammar(callableTools(r), r.parallel && typeof r.choice !== 'object');
  }

  prompt(messages: TemplateMessage[]): { messages: TemplateMessage[]; extra: Record<string, unknown> } {
    return toolPrompt(messages, this.request, this.format, this.rendersTools);
  }

  /** Mistral's [TOOL_CALLS] is a special token: the parser must see it in the text. */
  get keepsSpecialTokens(): boolean {
    return this.request !== undefined && this.format.name === 'mistral';
  }

  /** The non-streamed message: the calls when every complete one is valid (a last one the length limit cut
   *  is left out, and finish_reason says "length"), else the whole text as content. */
  message(r: ChoiceResult): { content: string | null; tool_calls?: ToolCallOut[]; finish: Finish } {
    if (!this.request) return { content: r.text, finish: r.finishReason };
    const parser = this.parser();
    const events = [...parser.push(r.text), ...parser.finish()];
    const calls = parser.closedCalls;
    if (calls.length === 0 || !calls.every((c) => c.valid)) return { content: r.text, finish: r.finishReason };
    const content = events
      .filter((e) => e.type === 'content')
      .map((e) => (e as { text: string }).text)
      .join('')
      .trim();
    return { content: content || null, tool_calls: calls.map(toOut), finish: finishOf(r, true) };
  }

  /** One choice's stream: chat deltas (each one chunk) for the text that arrives, then for the end. */
  streamer(): ToolStreamer {
    return new ToolStreamer(this.parser());
  }

  private parser(): ToolCallParser {
    return new ToolCallParser(this.format, this.names);
  }
}

/** A chat chunk's delta, as OpenAI streams tool calls: the first with index, id, type, name and arguments "",
 *  then argument fragments with the index alone. */
export type ChatDelta =
  | { content: string }
  | {
      tool_calls: Array<{
        index: number;
        id?: string;
        type?: 'function';
        function: { name?: string; arguments: string };
      }>;
    };

export class ToolStreamer {
  constructor(private readonly parser: ToolCallParser) {}

  push(text: string): ChatDelta[] {
    return this.parser.push(text).map(deltaOf);
  }

  /** What was held back, and the finish reason: tool_calls when calls were made and the reply ended. */
  finish(r: ChoiceResult): { deltas: ChatDelta[]; finish: Finish } {
    const deltas = this.parser.finish().map(deltaOf);
    return { deltas, finish: finishOf(r, this.parser.calls.length > 0) };
  }
}

function deltaOf(e: ToolCallEvent): ChatDelta {
  if (e.type === 'content') return { content: e.text };
  if (e.type === 'call')
    return { tool_calls: [{ index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: '' } }] };
  return { tool_calls: [{ index: e.index, function: { arguments: e.text } }] };
}

const toOut = (c: { id: string; name: string; arguments: string }): ToolCallOut => ({
  id: c.id,
  type: 'function',
  function: { name: c.name, arguments: c.arguments },
});

/** A reply that made calls and ended by itself finishes with tool_calls (as OpenAI's and vLLM's do). */
const finishOf = (r: ChoiceResult, called: boolean): Finish =>
  called && r.finishReason === 'stop' ? 'tool_calls' : r.finishReason;
