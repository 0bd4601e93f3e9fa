// Tool calls out of a reply's text as it streams, in a model family's format (tool-formats.ts). Text outside
// the calls is content; a call is announced as soon as its name is complete (id, name, arguments "") and its
// arguments follow in fragments of the raw text as they arrive, as OpenAI streams them. The same parser run
// over a whole reply at once gives the non-streamed message. Text that might be the start of a call marker is
// held back until it is known not to be.
import { randomUUID } from 'node:crypto';
import { scanObject } from './json-scan.js';
import type { ToolFormat } from './tool-formats.js';

export type ToolCallEvent =
  | { type: 'content'; text: string }
  | { type: 'call'; index: number; id: string; name: string }
  | { type: 'arguments'; index: number; text: string };

export interface ParsedCall {
  id: string;
  name: string;
  arguments: string; // the JSON text the model wrote
  valid: boolean; // a known tool, and arguments that parse as a JSON object
}

type Mode = 'text' | 'start' | 'between' | 'call' | 'after' | 'plain';

const PYTHON_TAG = '<|python_tag|>';

export class ToolCallParser {
  readonly calls: ParsedCall[] = [];
  private buf = '';
  private pos = 0; // buf[0, pos) is handled
  private mode: Mode;
  private callStart = 0;
  private sentArgs = 0; // characters of the current call's arguments sent so far
  private done = 0; // calls whose object has closed
  private markerAt = -1; // where the begin marker that no call has followed yet starts

  constructor(
    private readonly format: ToolFormat,
    private readonly toolNames: ReadonlySet<string>,
  ) {
    this.mode = format.bare === undefined ? 'text' : 'start';
  }

  /** The calls whose object has closed (the last of `calls` may still be open when the reply was cut). */
  get closedCalls(): ParsedCall[] {
    return this.calls.slice(0, this.done);
  }

  /** Events for the text that arrived. */
  push(text: string): ToolCallEvent[] {
    this.buf += text;
    const out: ToolCallEvent[] = [];
    while (this.step(out)) {}
    return merge(out);
  }

  /** The held-back text, as content, once the reply is complete. */
  finish(): ToolCallEvent[] {
    const out: ToolCallEvent[] = [];
    if (this.mode === 'text' || this.mode === 'start' || this.mode === 'plain') this.content(out, this.buf.length);
    return merge(out);
  }

  private content(out: ToolCallEvent[], to: number): void {
    if (to > this.pos) out.push({ type: 'content', text: this.buf.slice(this.pos, to) });
    this.pos = to;
  }

  /** One transition; false when it needs more text. */
  private step(out: ToolCallEvent[]): boolean {
    const b = this.buf;
    const f = this.format;
    switch (this.mode) {
      case 'plain':
        this.content(out, b.length);
        return false;
      case 'start': {
        // A reply that opens with the bare calls (llama3_json's object, Llama's <|python_tag|>, mistral's list
        // without its special token) is calls; otherwise content, where a begin marker may still come.
        const rest = b.slice(this.pos).trimStart();
        const lead = b.length - this.pos - rest.length;
        if (rest === '' || (rest.length < PYTHON_TAG.length && PYTHON_TAG.startsWith(rest))) return false;
        if (f.begin?.startsWith(rest)) return false;
        if (rest.startsWith(PYTHON_TAG)) {
          this.pos += lead + PYTHON_TAG.length;
          this.mode = 'between';
        } else if (rest[0] === f.bare && !(f.begin && rest.startsWith(f.begin))) {
          this.pos += lead + (f.bare === '[' ? 1 : 0);
          this.mode = 'between';
        } else {
          this.mode = f.begin === undefined ? 'plain' : 'text';
        }
        return true;
      }
      case 'text': {
        const at = b.indexOf(f.begin!, this.pos);
        if (at >= 0) {
          this.content(out, at);
          this.markerAt = at;
          this.pos = at + f.begin!.length;
          this.mode = 'between';
          return true;
        }
        this.content(out, b.length - heldBack(b, this.pos, f.begin!));
        return false;
      }
      case 'between': {
        // Before and between calls: whitespace and the format's separators until the next object.
        while (this.pos < b.length && /[\s,[;]/.test(b[this.pos]!)) this.pos++;
        if (this.pos >= b.length) return false;
        if (b[this.pos] === '{') {
          this.mode = 'call';
          this.callStart = this.pos;
          this.sentArgs = 0;
          this.markerAt = -1;
        } else if (b[this.pos] === ']') {
          this.pos++; // mistral's list is closed: what follows is content
          this.mode = 'plain';
        } else {
          // No call after all: a begin marker that no call followed is content, like what follows it.
          if (this.markerAt >= 0) {
            const end = this.pos;
            this.pos = this.markerAt;
            this.content(out, end);
            this.markerAt = -1;
          }
          this.mode = f.begin === undefined ? 'plain' : 'text';
        }
        return true;
      }
      case 'call':
        return this.scanCall(out);
      case 'after': {
        // hermes: the call's closing tag, then content again.
        const rest = b.slice(this.pos);
        const trimmed = rest.trimStart();
        if (trimmed.startsWith(f.end!)) {
          this.pos += rest.length - trimmed.length + f.end!.length;
          this.mode = 'text';
          return true;
        }
        if (f.end!.startsWith(trimmed)) return false;
        this.mode = 'text';
        return true;
      }
    }
  }

  private scanCall(out: ToolCallEvent[]): boolean {
    const b = this.buf;
    const obj = scanObject(b, this.callStart);
    if (obj.broken) {
      // Not a call after all: what was taken for one is content.
      this.pos = this.callStart;
      this.mode = 'plain';
      return true;
    }
    const name = obj.members.find((m) => m.key === 'name' && m.end >= 0);
    const args = obj.members.find(
      (m) => m.key === this.format.argsKey || m.key === 'arguments' || m.key === 'parameters',
    );
    // The call being scanned is calls[index] once its name is known.
    const index = this.done;
    if (name && this.calls[index] === undefined) {
      const n = JSON.parse(b.slice(name.start, name.end)) as unknown;
      const call: ParsedCall = {
        id: `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`,
        name: String(n),
        arguments: '',
        valid: false,
      };
      this.calls.push(call);
      out.push({ type: 'call', index, id: call.id, name: call.name });
    }
    const call = this.calls[index];
    if (call && args) {
      const upTo = args.end >= 0 ? args.end : b.length;
      const text = b.slice(args.start + this.sentArgs, upTo);
      if (text) out.push({ type: 'arguments', index, text });
      this.sentArgs = upTo - args.start;
      call.arguments = b.slice(args.start, upTo);
    }
    if (obj.end < 0) {
      this.pos = b.length;
      return false;
    }
    if (!call) {
      // An object without a name is no call: content.
      this.pos = this.callStart;
      this.mode = 'plain';
      return true;
    }
    call.valid = this.toolNames.has(call.name) && isJsonObject(call.arguments);
    this.done++;
    this.pos = obj.end;
    this.mode = this.format.end !== undefined ? 'after' : 'between';
    return true;
  }
}

/** How many characters at the end of b[from..] could begin `marker` (and so must wait for more text). */
function heldBack(b: string, from: number, marker: string): number {
  for (let k = Math.min(marker.length - 1, b.length - from); k > 0; k--)
    if (marker.startsWith(b.slice(b.length - k))) return k;
  return 0;
}

function isJsonObject(text: string): boolean {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** Adjacent content events as one. */
function merge(events: ToolCallEvent[]): ToolCallEvent[] {
  const out: ToolCallEvent[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.type === 'content' && last?.type === 'content') last.text += e.text;
    else if (e.type !== 'content' || e.text) out.push(e);
  }
  return out;
}
