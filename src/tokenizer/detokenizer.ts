// Incremental detokenization that never emits half a UTF-8 character and keeps word-boundary spacing right.
//
// Decoding tokens one at a time is wrong twice over: byte-fallback tokens (<0xE2><0x82><0xAC>) form one
// character only together, and SentencePiece-style decoders strip or add a leading space depending on what
// precedes. So, as vLLM and TGI do, we decode a small window: text(prefix..end) minus text(prefix..read),
// where `prefix` is where the previous emission started (the prompt's last few tokens at first) and `read`
// where it ended. A window that ends in U+FFFD is an incomplete character: hold it back until the next
// token completes it.
import type { TextTokenizer } from './tokenizer.js';

const REPLACEMENT = '\uFFFD';
/** How many already-emitted tokens to re-decode as context (enough for any space/merge effect). */
const CONTEXT_TOKENS = 5;

export class IncrementalDetokenizer {
  private readonly ids: number[];
  private prefixOffset: number;
  private readOffset: number;
  /** The text of ids[prefixOffset, readOffset) once decoded: it holds until the next emission moves them. */
  private prefixText: string | undefined;

  constructor(
    private readonly tok: TextTokenizer,
    promptIds: readonly number[],
    private readonly skipSpecialTokens = true,
  ) {
    this.ids = promptIds.slice(-CONTEXT_TOKENS);
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
  }

  /** Appends tokens and returns the new text they complete (possibly ''). */
  push(newIds: readonly number[]): string {
    let out = '';
    for (const id of newIds) {
      this.ids.push(id);
      out += this.step(false);
    }
    return out;
  }

  /** Decodes the text the next token's is taken against (at first the prompt's last tokens) ahead of that token:
   *  called while the request's first step runs, the first token's text then costs one decode instead of two. */
  prime(): void {
    this.prefixText ??= this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
  }

  /** Emits whatever is held back (an incomplete character at the very end becomes U+FFFD). */
  flush(): string {
    return this.step(true);
  }

  private step(final: boolean): string {
    if (this.readOffset >= this.ids.length) return '';
    this.prime();
    const prefixText = this.prefixText!;
    const fullText = this.decode(this.ids.slice(this.prefixOffset));
    // Nothing new yet (a skipped special token), or an incomplete character: hold back.
    if (fullText.length <= prefixText.length || (!final && fullText.endsWith(REPLACEMENT))) return '';
    const text = fullText.slice(prefixText.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.prefixText = undefined;
    if (this.prefixOffset > 1024) {
      // Keep the id array bounded for long generations.
      this.ids.splice(0, this.prefixOffset);
      this.readOffset -= this.prefixOffset;
      this.prefixOffset = 0;
    }
    return text;
  }

  private decode(ids: number[]): string {
    return ids.length === 0 ? '' : this.tok.decode(ids, this.skipSpecialTokens);
  }
}
