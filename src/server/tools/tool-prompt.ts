// Tools into the prompt. A chat template that renders tools (Qwen2.5, Hermes, Llama 3.1, Mistral) gets them
// as transformers passes them (`tools`), and earlier calls with their arguments as objects, as those templates
// expect. A template that knows nothing of tools (the stories260K demo's) gets kvserve's fallback instead: the
// tools and how to call them in a system message, earlier calls written into the assistant turns in the
// model's format, and tool results as user turns between <tool_response> tags.
import type { TemplateMessage } from '../../tokenizer/chat-template.js';
import type { ToolFormat } from './tool-formats.js';
import { type ToolRequest, templateTools } from './tool-request.js';

interface CallIn {
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: unknown };
}

const callsOf = (m: TemplateMessage): CallIn[] => (Array.isArray(m.tool_calls) ? (m.tool_calls as CallIn[]) : []);

/** A call's arguments as an object when they are JSON text (templates apply `tojson` to them). */
function argumentsObject(a: unknown): unknown {
  if (typeof a !== 'string') return a;
  try {
    return JSON.parse(a) as unknown;
  } catch {
    return a;
  }
}

/** The fallback's instructions, short (a small model's context is short): one JSON line per tool (name,
 *  description, parameters' schema), then the call format by example. */
export function toolInstructions(tools: ToolRequest, format: ToolFormat): string {
  const list = tools.tools.map((t) => JSON.stringify(t)).join('\n');
  return `Tools:\n${list}\nTo call one, write ${format.write('NAME', 'ARGUMENTS')}`;
}

/**
 * The messages and template variables for a chat with tools. `tools` undefined (no tools, or tool_choice
 * "none"): the tools are left out, and earlier calls and results are still written so that the template can
 * take them.
 */
export function toolPrompt(
  messages: TemplateMessage[],
  tools: ToolRequest | undefined,
  format: ToolFormat,
  templateRendersTools: boolean,
): { messages: TemplateMessage[]; extra: Record<string, unknown> } {
  if (templateRendersTools) {
    const out = messages.map((m) => {
      const calls = callsOf(m);
      if (calls.length === 0) return m;
      const tool_calls = calls.map((c) => ({
        ...c,
        function: { ...c.function, arguments: argumentsObject(c.function?.arguments) },
      }));
      return { ...m, tool_calls };
    });
    return { messages: out, extra: tools ? { tools: templateTools(tools) } : {} };
  }
  const out: TemplateMessage[] = messages.map((m) => {
    if (m.role === 'tool') return { role: 'user', content: `<tool_response>\n${m.content ?? ''}\n</tool_response>` };
    const calls = callsOf(m);
    if (m.role !== 'assistant' || calls.length === 0) return m;
    const written = calls.map((c) => format.write(c.function?.name ?? '', argumentsObject(c.function?.arguments)));
    return { role: 'assistant', content: [m.content, ...written].filter((x) => x).join('\n') };
  });
  if (tools) {
    const text = toolInstructions(tools, format);
    if (out[0]?.role === 'system') out[0] = { ...out[0], content: `${out[0].content ?? ''}\n\n${text}` };
    else out.unshift({ role: 'system', content: text });
  }
  return { messages: out, extra: {} };
}
