// The one place that loads xgrammar (@mlc-ai/web-xgrammar: xgrammar compiled to WebAssembly). Its package says
// "type": "module" but ships a UMD bundle that calls require(), so neither import nor require can load it in
// Node; it is evaluated here as the CommonJS it is. Each load is its own WebAssembly instance with its own
// memory, and gets its own console: xgrammar reports a bad schema, regex or grammar on stderr and then aborts
// the call, so the last error line is the only place its message can be read from.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as XG from '@mlc-ai/web-xgrammar';

export type XGrammar = typeof XG;
export type { CompiledGrammar, GrammarCompiler, GrammarMatcher, TokenizerInfo } from '@mlc-ai/web-xgrammar';

const require = createRequire(import.meta.url);
let source: { path: string; text: string } | undefined;

export interface XGrammarInstance {
  xg: XGrammar;
  /** The last error xgrammar printed (the reason of the call that just failed), cleared by takeError(). */
  takeError(): string | undefined;
}

/** A fresh xgrammar: its own WebAssembly instance, instantiated on its first call. */
export function loadXGrammar(): XGrammarInstance {
  if (!source) {
    const path = require.resolve('@mlc-ai/web-xgrammar');
    // Its Node branch also loads `module` with a dynamic import(), which code made by new Function cannot do
    // inside a vm context (as vitest runs tests): the require() given to it does the same.
    const text = readFileSync(path, 'utf8').replaceAll("await import('module')", "require('module')");
    source = { path, text };
  }
  let last: string | undefined;
  const note = (...args: unknown[]) => {
    const line = args.map(String).join(' ');
    // "Aborted()" follows every fatal error: the line before it says why.
    if (!line.startsWith('Aborted(')) last = line;
  };
  const quiet = { log: () => undefined, info: () => undefined, warn: note, error: note, debug: () => undefined };
  const module = { exports: {} as XGrammar };
  const factory = new Function('exports', 'module', 'require', '__filename', '__dirname', 'console', source.text);
  factory(module.exports, module, require, source.path, '', quiet);
  return {
    xg: module.exports,
    takeError() {
      const e = last;
      last = undefined;
      return e === undefined ? undefined : cleanMessage(e);
    },
  };
}

/** "[FATAL] /build/path/json_schema_converter.cc:902: Check failed: (x) is false: Unsupported type" → the reason. */
export function cleanMessage(line: string): string {
  return line
    .replace(/^\[(FATAL|ERROR|WARNING)\]\s+\S+:\d+:\s*/, '')
    .replace(/^Check failed: \(.*?\) is false:\s*/, '')
    .trim();
}
