// What a request constrains its output to, in one form for every API field that asks for it (response_format,
// vLLM's structured_outputs and guided_*, tool calls), and the two ways xgrammar takes it: parsed into a
// Grammar (the probe, which checks it without a tokenizer) or compiled against the model's vocabulary.
import type { CompiledGrammar, GrammarCompiler, XGrammar } from './xgrammar-module.js';

export type GrammarSpec =
  /** A JSON Schema (its text), written as compact JSON (see jsonArgs). */
  | { kind: 'json_schema'; schema: string }
  /** The whole output matches this regular expression. */
  | { kind: 'regex'; pattern: string }
  /** EBNF (xgrammar's dialect, GBNF-like), from the rule `root`. */
  | { kind: 'ebnf'; grammar: string }
  /** An xgrammar structural tag (its JSON). */
  | { kind: 'structural_tag'; tag: string }
  /** Tool calls: begin, a compact JSON value of the schema, end; with a separator, one or more such calls. */
  | { kind: 'tool_calls'; schema: string; begin: string; end: string; separator?: string };

/** The cache key: two specs with the same key compile to the same grammar (the tokenizer is the compiler's). */
export const specKey = (s: GrammarSpec): string => JSON.stringify(s);

/** JSON in the compact form json.dumps writes: one line, ", " and ": " between tokens, no other whitespace.
 *  (xgrammar can allow any whitespace, as vLLM does by default; a small model then often fills its budget with
 *  newlines and never closes the object.) Arguments after the schema: anyWhitespace, indent (-1 = one line). */
const jsonArgs = [false, -1] as const;

/** The structural tag of tool calls. A tag's json_schema content would allow any whitespace, so the call is
 *  the compact JSON grammar of its schema (xgrammar's own conversion) as the tag's grammar content. */
async function toolCallsTag(xg: XGrammar, s: Extract<GrammarSpec, { kind: 'tool_calls' }>): Promise<string> {
  const call = await xg.Testings._jsonSchemaToEBNF(s.schema, ...jsonArgs);
  const tag = { type: 'tag', begin: s.begin, content: { type: 'grammar', grammar: call }, end: s.end };
  const format =
    s.separator === undefined
      ? tag
      : { type: 'tags_with_separator', tags: [tag], separator: s.separator, at_least_one: true };
  return JSON.stringify({ type: 'structural_tag', format });
}

/** Parses the spec into a Grammar and frees it: throws (xgrammar aborts the call) when it is invalid. */
export async function parseSpec(xg: XGrammar, s: GrammarSpec): Promise<void> {
  const g =
    s.kind === 'json_schema'
      ? await xg.Grammar.fromJSONSchema(s.schema, ...jsonArgs)
      : s.kind === 'regex'
        ? await xg.Grammar.fromStructuralTag({ type: 'regex', pattern: s.pattern })
        : s.kind === 'ebnf'
          ? await xg.Grammar.fromEBNF(s.grammar)
          : await xg.Grammar.fromStructuralTag(s.kind === 'tool_calls' ? await toolCallsTag(xg, s) : s.tag);
  g.dispose();
}

/** Compiles the spec for the compiler's vocabulary (`xg` is the compiler's instance). */
export async function compileSpec(xg: XGrammar, c: GrammarCompiler, s: GrammarSpec): Promise<CompiledGrammar> {
  if (s.kind === 'json_schema') return c.compileJSONSchema(s.schema, ...jsonArgs);
  if (s.kind === 'regex') return c.compileStructuralTag({ type: 'regex', pattern: s.pattern });
  if (s.kind === 'ebnf') return c.compileGrammar(s.grammar);
  return c.compileStructuralTag(s.kind === 'tool_calls' ? await toolCallsTag(xg, s) : s.tag);
}

/** An EBNF string literal of `text` (xgrammar reads C-style escapes, which JSON's are). */
export const ebnfLiteral = (text: string): string => JSON.stringify(text);

/** vLLM's `choice`: the output is exactly one of the strings. */
export const choiceSpec = (choices: string[]): GrammarSpec => ({
  kind: 'ebnf',
  grammar: `root ::= ${choices.map(ebnfLiteral).join(' | ')}`,
});
