// How a model family writes tool calls, as vLLM's --tool-call-parser names them, and what follows from it:
//   hermes       <tool_call>{"name": ..., "arguments": {...}}</tool_call>, one block per call (Hermes, Qwen2.5)
//   llama3_json  {"name": ..., "parameters": {...}} as the whole reply, calls separated by ";" (Llama 3.1+)
//   mistral      [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...] (Mistral's v3 tokenizers and later)
// `auto` picks one from the chat template; a template that knows nothing of tools gets hermes, which kvserve
// then renders into the prompt itself (tool-prompt.ts).
import type { GrammarSpec } from '../../grammar/grammar-spec.js';
import type { ToolDef } from './tool-request.js';

export type ToolFormatName = 'hermes' | 'llama3_json' | 'mistral';
export const TOOL_CALL_PARSERS = ['auto', 'hermes', 'llama3_json', 'mistral'] as const;
export type ToolCallParserFlag = (typeof TOOL_CALL_PARSERS)[number];

export interface ToolFormat {
  name: ToolFormatName;
  /** The key of the arguments object in a call. */
  argsKey: 'arguments' | 'parameters';
  /** Text that opens the calls (undefined: a reply that starts with "{" is a call). */
  begin: string | undefined;
  /** Text that closes one call (hermes), or undefined. */
  end: string | undefined;
  /** The calls may also stand alone as the whole reply, as this JSON value (an object or a list of them). */
  bare: '{' | '[' | undefined;
  /** The grammar of the calls, for tool_choice required or a named function. */
  grammar(tools: ToolDef[], parallel: boolean): GrammarSpec;
  /** One call as the model writes it (rendering earlier assistant turns when the template cannot). */
  write(name: string, args: unknown): string;
}

/** The JSON schema of one call of any of `tools`: {"name": <one of them>, <argsKey>: <its parameters>}. */
export function callSchema(tools: ToolDef[], argsKey: string): Record<string, unknown> {
  const one = (t: ToolDef) => ({
    type: 'object',
    properties: { name: { const: t.name }, [argsKey]: t.parameters },
    required: ['name', argsKey],
    additionalProperties: false,
  });
  return tools.length === 1 ? one(tools[0]!) : { anyOf: tools.map(one) };
}

const HERMES: ToolFormat = {
  name: 'hermes',
  argsKey: 'arguments',
  begin: '<tool_call>',
  end: '</tool_call>',
  bare: undefined,
  grammar: (tools, parallel) => ({
    kind: 'tool_calls',
    schema: JSON.stringify(callSchema(tools, 'arguments')),
    begin: '<tool_call>\n',
    end: '\n</tool_call>',
    ...(parallel ? { separator: '\n' } : {}),
  }),
  write: (name, args) => `<tool_call>\n${JSON.stringify({ name, arguments: args })}\n</tool_call>`,
};

const LLAMA3_JSON: ToolFormat = {
  name: 'llama3_json',
  argsKey: 'parameters',
  begin: undefined,
  end: undefined,
  bare: '{',
  // One call: Llama 3.1's template renders one call per assistant turn.
  grammar: (tools) => ({ kind: 'json_schema', schema: JSON.stringify(callSchema(tools, 'parameters')) }),
  write: (name, args) => JSON.stringify({ name, parameters: args }),
};

const MISTRAL: ToolFormat = {
  name: 'mistral',
  argsKey: 'arguments',
  begin: '[TOOL_CALLS]',
  end: undefined,
  bare: '[',
  // [TOOL_CALLS] is a special token of Mistral's tokenizers, which a grammar over text cannot emit: the
  // constrained reply is the list of calls alone, which the parser takes with or without the token.
  grammar: (tools, parallel) => ({
    kind: 'json_schema',
    schema: JSON.stringify({
      type: 'array',
      items: callSchema(tools, 'arguments'),
      minItems: 1,
      ...(parallel ? {} : { maxItems: 1 }),
    }),
  }),
  write: (name, args) => `[TOOL_CALLS]${JSON.stringify([{ name, arguments: args }])}`,
};

export const TOOL_FORMATS: Record<ToolFormatName, ToolFormat> = {
  hermes: HERMES,
  llama3_json: LLAMA3_JSON,
  mistral: MISTRAL,
};

/** The format a chat template writes calls in, from the markers it contains; hermes when it shows none. */
export function detectToolFormat(template: string | undefined): ToolFormatName {
  if (!template) return 'hermes';
  if (template.includes('<tool_call>')) return 'hermes';
  if (template.includes('[TOOL_CALLS]')) return 'mistral';
  if (
    template.includes('<|python_tag|>') ||
    (template.includes('<|start_header_id|>') && template.includes('"parameters"'))
  )
    return 'llama3_json';
  return 'hermes';
}

/** Whether the template renders `tools` itself (else tool-prompt.ts writes them into the messages). */
export const templateKnowsTools = (template: string | undefined): boolean => !!template && /\btools\b/.test(template);
