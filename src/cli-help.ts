// `--help` pages, drawn from the same flag tables the parser reads (config.ts), so every option is listed
// with its placeholder and its default, and none can be forgotten. Two columns: the flag with its value
// placeholder, then the description wrapped to the width; a flag too wide for its column (or a choice
// list too long to show there) moves the description to the next line or its choices into it.
import type { FlagSpec } from './config.js';

export interface HelpPage {
  usage: string; // e.g. 'kvserve serve [--model DIR] [options]'
  summary?: string; // one paragraph under the usage line
  flags: Record<string, FlagSpec>;
  /** Values by FlagSpec.key; shown as "(default: …)" unless the help text already names its default. */
  defaults?: object;
  examples: string[]; // command lines, each shown on its own line
}

const COLUMN = 32; // where descriptions start
const DEFAULT_WIDTH = 100;

// Placeholders of the shared flags whose tables do not name one (a flag can name its own with `metavar`).
const PLACEHOLDERS: Record<string, string> = {
  model: 'DIR',
  tokenizer: 'DIR',
  'chat-template': 'FILE',
  host: 'HOST',
  'api-key': 'KEY',
  'served-model-name': 'NAME',
  'base-url': 'URL',
  'body-limit': 'BYTES',
  'kv-cache-memory': 'GIB',
  dataset: 'FILE',
  'result-file': 'FILE',
  html: 'FILE',
  'request-rate': 'R',
  goodput: 'SLO...',
  percentiles: 'P,...',
  'sweep-rates': 'R,...',
  compare: 'A.json B.json',
};

// Never print these flags' values: a key taken from the environment must not end up in a terminal log.
const SECRET = new Set(['api-key']);

export function renderHelp(page: HelpPage, width = helpWidth()): string {
  const parts = [`usage: ${page.usage}`];
  if (page.summary) parts.push(wrap(page.summary.split(' '), width, 0).join('\n'));
  parts.push(`options:\n${formatOptions(page.flags, page.defaults, width)}`);
  parts.push(`examples:\n${page.examples.map((e) => `  ${e}`).join('\n')}`);
  return parts.join('\n\n');
}

/** The options table alone (for pages laid out by hand, such as `kvserve bench --help`). */
export function formatOptions(flags: Record<string, FlagSpec>, defaults?: object, width = helpWidth()): string {
  const values = (defaults ?? {}) as Record<string, unknown>;
  return Object.entries(flags)
    .map(([name, spec]) => {
      const { arg: flag, extra } = argument(name, spec);
      const words = (spec.help + extra).split(/\s+/).filter(Boolean);
      // A help text that states its own default (or that the flag is required) keeps its words.
      if (defaults && !/\((default\b|required\))/i.test(spec.help))
        words.push(`(default: ${shown(name, spec, values[spec.key])})`);
      const lines = wrap(words, width, COLUMN);
      const arg = `  ${flag}`;
      if (arg.length > COLUMN - 1) return [arg, ...lines.map((l) => ' '.repeat(COLUMN) + l)].join('\n');
      return [arg.padEnd(COLUMN) + lines[0], ...lines.slice(1).map((l) => ' '.repeat(COLUMN) + l)].join('\n');
    })
    .join('\n');
}

/** `--name PLACEHOLDER`; a choice list that does not fit the column goes into the description instead. */
function argument(name: string, spec: FlagSpec): { arg: string; extra: string } {
  if (spec.kind === 'boolean') return { arg: `--[no-]${name}`, extra: '' };
  if (spec.choices) {
    const inline = `--${name} ${spec.choices.join('|')}`;
    if (inline.length <= COLUMN - 4) return { arg: inline, extra: '' };
    const meta = spec.metavar ?? PLACEHOLDERS[name] ?? name.split('-').at(-1)!.toUpperCase();
    return { arg: `--${name} ${meta}`, extra: `; ${meta} is one of ${spec.choices.join(', ')}` };
  }
  const meta = spec.metavar ?? PLACEHOLDERS[name] ?? (spec.kind === 'string' ? 'TEXT' : 'N');
  return { arg: `--${name} ${meta}`, extra: '' };
}

function shown(name: string, spec: FlagSpec, value: unknown): string {
  if (value === undefined || value === '' || value === null) return 'none';
  if (SECRET.has(name)) return 'set from the environment';
  if (spec.kind === 'boolean') return value ? 'on' : 'off';
  return String(value);
}

/** Greedy wrap of `words` (each kept whole) into lines of at most `width - indent` characters. */
function wrap(words: string[], width: number, indent: number): string[] {
  const room = Math.max(20, width - indent);
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines;
}

/** The terminal's width (within reason), or 100 columns when output is not a terminal. */
function helpWidth(): number {
  const cols = process.stdout.isTTY ? process.stdout.columns : undefined;
  return cols ? Math.min(Math.max(cols, 60), 120) : DEFAULT_WIDTH;
}
