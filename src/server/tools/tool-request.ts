// A chat request's `tools` and `tool_choice` (OpenAI's shapes), checked, as what the route acts on: the tools
// the model is told about, whether it must call one (and which), and whether it may call several.
import { ApiError, invalid } from '../errors.js';

export interface ToolDef {
  name: string;
  description?: string;
  /** The arguments' JSON schema (an object schema without properties when the tool declares none). */
  parameters: Record<string, unknown>;
}

export interface ToolRequest {
  tools: ToolDef[];
  /** auto: the model decides, its output is parsed for calls; required: at least one call; a name: that one. */
  choice: 'auto' | 'required' | { name: string };
  parallel: boolean;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

function toolDef(v: unknown, i: number): ToolDef {
  const at = `tools[${i}]`;
  if (!isObject(v) || v.type !== 'function')
    throw invalid(
      `${at} must be {"type": "function", "function": {...}} (only function tools are supported)`,
      `${at}.type`,
    );
  const f = v.function;
  if (!isObject(f)) throw new ApiError('missing_required_parameter', `${at}.function is required`, `${at}.function`);
  if (typeof f.name !== 'string' || !NAME.test(f.name))
    throw invalid(`${at}.function.name must be 1 to 64 letters, digits, underscores or dashes`, `${at}.function.name`);
  const p = f.parameters;
  if (p !== undefined && p !== null && !isObject(p))
    throw invalid(`${at}.function.parameters must be a JSON schema object`, `${at}.function.parameters`);
  const def: ToolDef = { name: f.name, parameters: isObject(p) ? p : { type: 'object', properties: {} } };
  if (typeof f.description === 'string') def.description = f.description;
  return def;
}

/** undefined when the request has no tools or tool_choice is "none" (the tools are then ignored). */
export function toolRequest(tools: unknown, toolChoice: unknown, parallel: unknown): ToolRequest | undefined {
  const none = toolChoice === 'none';
  if (tools === undefined || tools === null || (Array.isArray(tools) && tools.length === 0)) {
    if (toolChoice !== undefined && toolChoice !== null && toolChoice !== 'none' && toolChoice !== 'auto')
      throw invalid('tool_choice needs tools', 'tool_choice');
    return undefined;
  }
  if (!Array.isArray(tools)) throw invalid('tools must be a list of tools', 'tools');
  const defs = tools.map(toolDef);
  const seen = new Set<string>();
  for (const [i, d] of defs.entries()) {
    if (seen.has(d.name)) throw invalid(`tools[${i}]: the name "${d.name}" is used twice`, `tools[${i}].function.name`);
    seen.add(d.name);
  }
  if (none) return undefined;
  let choice: ToolRequest['choice'];
  if (toolChoice === undefined || toolChoice === null || toolChoice === 'auto') choice = 'auto';
  else if (toolChoice === 'required') choice = 'required';
  else if (isObject(toolChoice) && toolChoice.type === 'function' && isObject(toolChoice.function)) {
    const name = toolChoice.function.name;
    if (typeof name !== 'string' || !seen.has(name))
      throw invalid(
        `tool_choice names the function "${String(name)}", which is not among the tools`,
        'tool_choice.function.name',
      );
    choice = { name };
  } else {
    throw invalid(
      'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name"}}',
      'tool_choice',
    );
  }
  return { tools: defs, choice, parallel: parallel !== false };
}

/** The tools a call may use: the named one, or all of them. */
export const callableTools = (t: ToolRequest): ToolDef[] =>
  typeof t.choice === 'object' ? t.tools.filter((d) => d.name === (t.choice as { name: string }).name) : t.tools;

/** The tools as chat templates take them (transformers' apply_chat_template(tools=...)). */
export const templateTools = (t: ToolRequest) =>
  t.tools.map((d) => ({
    type: 'function',
    function: { name: d.name, ...(d.description ? { description: d.description } : {}), parameters: d.parameters },
  }));
