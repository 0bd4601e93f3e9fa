// What a logprob entry calls a token: its text as it reads in context, and its UTF-8 bytes.
//
// Decoding a token alone loses the leading space SentencePiece-style decoders strip at the start of a
// string ("▁was" → "was"), so we decode it after a few context tokens and keep the difference — the
// same window trick as the incremental detokenizer. A byte-fallback token (<0xE2>) is half a character;
// its text reads U+FFFD and `bytes` carries the real byte, as OpenAI does (chat); the legacy completions
// form, which has no bytes field, shows it as vLLM does: `bytes:\xe2`.
import type { TextTokenizer } from '../tokenizer/tokenizer.js';
import type { LogprobEntry } from './generation.js';

const CONTEXT_TOKENS = 4;
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

export interface TokenText {
  id: number;
  token: string;
  bytes: number[];
  byteFallback: boolean; // a <0xNN> token: `token` is U+FFFD, `bytes` the one real byte
}

/** OpenAI's per-token logprobs (chat's `logprobs.content`, the Responses API's `logprobs`), each with its
 *  alternatives; vLLM's `token_id:N` names on request. */
export function tokenLogprobs(entries: LogprobEntry[], asTokenIds: boolean) {
  const name = (t: TokenText) => (asTokenIds ? `token_id:${t.id}` : t.token);
  return entries.map((e) => ({
    token: name(e.token),
    logprob: e.logprob,
    bytes: e.token.bytes,
    top_logprobs: e.top.map((t) => ({ token: name(t.token), logprob: t.logprob, bytes: t.token.bytes })),
  }));
}

/** The legacy completions form: text, a byte-fallback token's byte, or vLLM's `token_id:N`. */
export function legacyTokenName(t: TokenText, asTokenIds: boolean): string {
  if (asTokenIds) return `token_id:${t.id}`;
  return t.byteFallback ? `bytes:\\x${t.bytes[0]!.toString(16).padStart(2, '0')}` : t.token;
}

export class TokenTexts {
  private context: number[];
  private contextText: string;

  constructor(
    private readonly tok: TextTokenizer,
    promptIds: readonly number[],
  ) {
    this.context = promptIds.slice(-CONTEXT_TOKENS);
    this.contextText = this.decode(this.context);
  }

  /** The text of `id` if it came next (used for the sampled token and its alternatives alike). */
  describe(id: number): TokenText {
    const piece = this.tok.idToToken(id);
    const byte = piece === undefined ? null : BYTE_TOKEN.exec(piece);
    if (byte) return { id, token: '\uFFFD', bytes: [parseInt(byte[1]!, 16)], byteFallback: true };
    const full = this.decode([...this.context, id]);
    const token = full.startsWith(this.contextText) ? full.slice(this.contextText.length) : this.decode([id]);
    return { id, token, bytes: [...Buffer.from(token, 'utf8')], byteFallback: false };
  }

  /** Moves the context past a sampled token. */
  advance(id: number): void {
    this.context.push(id);
    if (this.context.length > CONTEXT_TOKENS) this.context.shift();
    this.contextText = this.decode(this.context);
  }

  private decode(ids: number[]): string {
    return ids.length === 0 ? '' : this.tok.decode(ids, false);
  }
}
