// Structured outputs: the request fields that constrain what is generated (OpenAI's response_format, vLLM's
// structured_outputs and its older guided_* fields) as one GrammarSpec, and the spec compiled into one grammar
// constraint per choice. An invalid schema, regex or grammar is a 400 carrying xgrammar's message.
import { GrammarError } from '../grammar/grammar-probe.js';
import { GrammarService } from '../grammar/grammar-service.js';
import { choiceSpec, type GrammarSpec } from '../grammar/grammar-spec.js';
import type { CompiledGrammar } from '../grammar/xgrammar-module.js';
import { ApiError, invalid, unsupported } from './errors.js';
import type { ChoiceSpec } from './generation.js';
import type { LoadedModel } from './model-slot.js';

/** The fields as the schemas let them through (checked here in detail, with a 400 naming the field). */
export interface StructuredFields {
  response_format?: unknown;
  structured_outputs?: unknown;
  guided_json?: unknown;
  guided_regex?: unknown;
  guided_choice?: unknown;
  guided_grammar?: unknown;
  guided_decoding_backend?: unknown;
  guided_whitespace_pattern?: unknown;
  structural_tag?: unknown;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isSet = (v: unknown) => v !== undefined && v !== null;

/** A JSON schema given as an object (or, in vLLM's fields, as its text) → its text; a 400 otherwise. */
function schemaText(v: unknown, param: string): string {
  if (typeof v === 'string') {
    try {
      if (!isObject(JSON.parse(v)) && typeof JSON.parse(v) !== 'boolean') throw new Error('not an object');
    } catch (e) {
      throw invalid(`${param} must be a JSON schema (an object, or its JSON text): ${(e as Error).message}`, param);
    }
    return v;
  }
  if (!isObject(v) && typeof v !== 'boolean') throw invalid(`${param} must be a JSON schema object`, param);
  return JSON.stringify(v);
}

/** OpenAI's response_format (chat and completions) or the Responses API's text.format, as one spec. */
export function responseFormatSpec(v: unknown, param: string, flat = false): GrammarSpec | undefined {
  if (!isSet(v)) return undefined;
  if (!isObject(v) || typeof v.type !== 'string') throw invalid(`${param} must be an object with a "type"`, param);
  if (v.type === 'text') return undefined;
  if (v.type === 'json_object') return { kind: 'json_schema', schema: '{"type":"object"}' };
  if (v.type === 'json_schema') {
    // Chat: {type, json_schema: {name, schema, strict}}; the Responses API flattens it: {type, name, schema}.
    const js = flat ? v : v.json_schema;
    const at = flat ? param : `${param}.json_schema`;
    if (!isObject(js)) throw new ApiError('missing_required_parameter', `${at} is required for type json_schema`, at);
    if (typeof js.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(js.name))
      throw invalid(`${at}.name must be 1 to 64 letters, digits, underscores or dashes`, `${at}.name`);
    // OpenAI: no schema means any JSON object is fine.
    const schema =
      js.schema === undefined || js.schema === null ? '{"type":"object"}' : schemaText(js.schema, `${at}.schema`);
    return { kind: 'json_schema', schema };
  }
  throw invalid(`${param}.type must be one of text, json_object, json_schema; got "${v.type}"`, `${param}.type`);
}

/** vLLM's structured_outputs object: exactly one of json, regex, choice, grammar, json_object, structural_tag. */
function structuredOutputsSpec(v: unknown): GrammarSpec | undefined {
  if (!isSet(v)) return undefined;
  const param = 'structured_outputs';
  if (!isObject(v)) throw invalid(`${param} must be an object`, param);
  const known = ['json', 'regex', 'choice', 'grammar', 'json_object', 'structural_tag'];
  const options = ['disable_any_whitespace', 'disable_fallback', 'disable_additional_properties', 'whitespace_pattern'];
  for (const key of Object.keys(v)) {
    if (!known.includes(key) && !options.includes(key))
      throw new ApiError(
        'unknown_parameter',
        `Unrecognized request argument supplied: ${param}.${key}`,
        `${param}.${key}`,
      );
  }
  if (isSet(v.whitespace_pattern)) throw unsupported(`${param}.whitespace_pattern`, 'whitespace_pattern');
  if (v.disable_additional_properties === false)
    throw unsupported(`${param}.disable_additional_properties`, 'additional properties beyond the schema');
  const set = known.filter((k) => isSet(v[k]) && v[k] !== false);
  if (set.length !== 1) {
    throw invalid(
      `${param} must set exactly one of ${known.join(', ')}${set.length ? `; it sets ${set.join(', ')}` : ''}`,
      param,
    );
  }
  // disable_any_whitespace is accepted and changes nothing: JSON is always compact here (grammar-spec.ts).
  const at = (k: string) => `${param}.${k}`;
  const kind = set[0]!;
  if (kind === 'json') return { kind: 'json_schema', schema: schemaText(v.json, at('json')) };
  if (kind === 'json_object') return { kind: 'json_schema', schema: '{"type":"object"}' };
  if (kind === 'regex') return { kind: 'regex', pattern: stringField(v.regex, at('regex')) };
  if (kind === 'grammar') return { kind: 'ebnf', grammar: stringField(v.grammar, at('grammar')) };
  if (kind === 'structural_tag') {
    const tag = typeof v.structural_tag === 'string' ? v.structural_tag : JSON.stringify(v.structural_tag);
    return { kind: 'structural_tag', tag };
  }
  return choiceSpec(choiceList(v.choice, at('choice')));
}

function stringField(v: unknown, param: string): string {
  if (typeof v !== 'string' || v === '') throw invalid(`${param} must be a non-empty string`, param);
  return v;
}

function choiceList(v: unknown, param: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((c) => typeof c === 'string' && c !== ''))
    throw invalid(`${param} must be a non-empty list of non-empty strings`, param);
  return v as string[];
}

/**
 * The one grammar the request's fields ask for, or undefined. Setting two of response_format,
 * structured_outputs and guided_* is a 400 (which one should win is not for the server to guess).
 */
export function structuredSpec(body: StructuredFields): { spec: GrammarSpec; param: string } | undefined {
  const guided: Array<[string, () => GrammarSpec]> = [
    ['guided_json', () => ({ kind: 'json_schema', schema: schemaText(body.guided_json, 'guided_json') })],
    ['guided_regex', () => ({ kind: 'regex', pattern: stringField(body.guided_regex, 'guided_regex') })],
    ['guided_choice', () => choiceSpec(choiceList(body.guided_choice, 'guided_choice'))],
    ['guided_grammar', () => ({ kind: 'ebnf', grammar: stringField(body.guided_grammar, 'guided_grammar') })],
  ];
  if (isSet(body.guided_whitespace_pattern))
    throw unsupported('guided_whitespace_pattern', 'guided_whitespace_pattern');
  const backend = body.guided_decoding_backend;
  if (isSet(backend) && !(typeof backend === 'string' && /^(auto|xgrammar)(:.*)?$/.test(backend)))
    throw unsupported('guided_decoding_backend', `guided decoding backends other than xgrammar ("${String(backend)}")`);
  if (isSet(body.structural_tag))
    throw unsupported('structural_tag', 'the top-level structural_tag (use structured_outputs.structural_tag)');
  const specs: Array<[string, GrammarSpec]> = [];
  const rf = responseFormatSpec(body.response_format, 'response_format');
  if (rf) specs.push(['response_format', rf]);
  const so = structuredOutputsSpec(body.structured_outputs);
  if (so) specs.push(['structured_outputs', so]);
  for (const [field, make] of guided) if (isSet(body[field as keyof StructuredFields])) specs.push([field, make()]);
  if (specs.length > 1)
    throw invalid(`${specs.map(([f]) => f).join(' and ')} both constrain the output: set only one`, specs[1]![0]);
  return specs[0] && { spec: specs[0][1], param: specs[0][0] };
}

const services = new WeakMap<LoadedModel, Promise<GrammarService>>();

/** The model's grammar service, made on the first request that needs one (servers that never constrain an
 *  output never load xgrammar). */
export function grammarService(model: LoadedModel): Promise<GrammarService> {
  let s = services.get(model);
  if (!s) {
    s = GrammarService.create(model.tokenizer, model.vocabSize);
    s.catch(() => services.delete(model));
    services.set(model, s);
  }
  return s;
}

/** A spec being compiled for a request (started as soon as the request is parsed, so that compiling overlaps
 *  the prompt's rendering and tokenizing); `param` is the field a 400 names. */
export interface PendingGrammar {
  compiled: Promise<{ service: GrammarService; compiled: CompiledGrammar }>;
}

export function startGrammar(model: LoadedModel, spec: GrammarSpec, param: string): PendingGrammar {
  const compiled = grammarService(model).then(async (service) => {
    try {
      return { service, compiled: await service.compile(spec) };
    } catch (e) {
      if (e instanceof GrammarError) throw invalid(`invalid ${describe(spec)}: ${e.message}`, param);
      throw e;
    }
  });
  compiled.catch(() => undefined); // awaited by attachConstraints; a request that fails first must not leak a rejection
  return { compiled };
}

/** One matcher of the grammar per choice, as the choice's engine constraint. */
export async function attachConstraints(choices: ChoiceSpec[], pending: PendingGrammar | undefined): Promise<void> {
  if (!pending) return;
  const { service, compiled } = await pending.compiled;
  for (const c of choices) c.constraint = await service.constraint(compiled);
}

const DESCRIPTIONS: Record<GrammarSpec['kind'], string> = {
  json_schema: 'JSON schema',
  regex: 'regex',
  ebnf: 'grammar',
  structural_tag: 'structural tag',
  tool_calls: 'tool parameters schema',
};
const describe = (s: GrammarSpec) => DESCRIPTIONS[s.kind];
