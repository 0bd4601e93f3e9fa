// The longest prompt text worth tokenizing. Tokenizing costs time superlinear in the text, and most of what
// an 8 MiB body can carry could never fit the context anyway; so the server refuses, by its UTF-8 byte
// length alone, any text that is certain to tokenize into more tokens than the context holds.
//
// The bound is sound when one token never stands for more than B bytes of the input text:
//   tokens(text) ≥ bytes(text) / B, so bytes(text) > (maxModelLen − 1) · B  ⇒  no room for one generated token.
// B is the longest token's UTF-8 length (vocabulary and added tokens), times what the normalizer can shrink
// text by: a token covers bytes of the *normalized* text, and NFC/NFKC/lowercasing can turn 3 bytes into 1
// (a Hangul jamo triple, a fullwidth letter, the Kelvin sign). Byte-level vocabularies write each byte as
// a character of 1–2 UTF-8 bytes and byte-fallback tokens ("<0x41>") are longer than the byte they stand
// for, so their lengths only overestimate B. Whatever can drop text or fold an unbounded run into one token
// (stripping, a whitespace-dropping pre-tokenizer, an unknown token that fuses runs, WordPiece's single
// [UNK] for a long word) makes the bound unsound: then none is derived and --max-prompt-bytes sets one.

type Json = Record<string, unknown>;

export type BytesPerToken = { bytes: number } | { reason: string };

/** Unicode normalization and lowercasing shrink text at most 3× (3-byte characters becoming 1-byte ones). */
const UNICODE_SHRINK = 3;

function normalizerShrink(n: Json | null | undefined): number | string {
  if (!n) return 1;
  switch (n.type) {
    case 'Sequence': {
      let f = 1;
      for (const part of (n.normalizers ?? []) as Json[]) {
        const g = normalizerShrink(part);
        if (typeof g === 'string') return g;
        f *= g;
      }
      return f;
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
    case 'Lowercase':
      return UNICODE_SHRINK;
    case 'Prepend':
    case 'ByteLevel':
      return 1;
    case 'Replace': {
      const pattern = (n.pattern as Json | undefined)?.String;
      const content = n.content;
      if (
        typeof pattern === 'string' &&
        typeof content === 'string' &&
        Buffer.byteLength(content) >= Buffer.byteLength(pattern)
      )
        return 1;
      return 'a Replace normalizer that can shorten text';
    }
    default:
      return `the ${String(n.type)} normalizer, which can drop text`;
  }
}

/** Pre-tokenizers that only split (or map bytes to characters) keep every byte; the others drop some. */
function preTokenizerKeepsText(p: Json | null | undefined): string | undefined {
  if (!p) return undefined;
  switch (p.type) {
    case 'Sequence':
      for (const part of (p.pretokenizers ?? []) as Json[]) {
        const why = preTokenizerKeepsText(part);
        if (why) return why;
      }
      return undefined;
    case 'ByteLevel':
    case 'Metaspace':
    case 'Digits':
    case 'Punctuation':
    case 'UnicodeScripts':
      return undefined;
    case 'Split':
      return p.behavior === 'Removed' ? 'a Split pre-tokenizer that removes what it matches' : undefined;
    default:
      return `the ${String(p.type)} pre-tokenizer, which drops text`;
  }
}

function hasByteLevel(p: Json | null | undefined): boolean {
  if (!p) return false;
  if (p.type === 'ByteLevel') return true;
  return p.type === 'Sequence' && ((p.pretokenizers ?? []) as Json[]).some(hasByteLevel);
}

/** The most input bytes one token can stand for, from tokenizer.json; or why no such bound holds. */
export function bytesPerToken(tokJson: Json): BytesPerToken {
  const model = (tokJson.model ?? {}) as Json;
  const pre = tokJson.pre_tokenizer as Json | null | undefined;
  if (model.type !== 'BPE')
    return { reason: `a ${String(model.type)} model can fold a long word into one unknown token` };
  if (!model.byte_fallback && !hasByteLevel(pre)) {
    if (!model.unk_token)
      return { reason: 'a BPE model without byte fallback or unknown token drops what it cannot encode' };
    if (model.fuse_unk) return { reason: 'a BPE model that fuses unknown characters into one token' };
  }
  const why = preTokenizerKeepsText(pre);
  if (why) return { reason: why };
  const shrink = normalizerShrink(tokJson.normalizer as Json | null | undefined);
  if (typeof shrink === 'string') return { reason: shrink };

  const vocab = model.vocab;
  const words = Array.isArray(vocab)
    ? vocab.map((v) => (Array.isArray(v) ? String(v[0]) : String(v)))
    : Object.keys((vocab ?? {}) as Json);
  const added = ((tokJson.added_tokens ?? []) as Array<{ content?: string }>).map((t) => t.content ?? '');
  let longest = 4; // an unknown token stands for one character: at most 4 bytes
  for (const w of [...words, ...added]) longest = Math.max(longest, Buffer.byteLength(w));
  return { bytes: longest * shrink };
}

/**
 * The prompt byte limit the server enforces: `configured` when set (> 0), else what can fit `maxModelLen`
 * tokens by `perToken`, else (no sound bound) `fallback` — the body limit, which bounds it anyway.
 */
export function promptByteLimit(
  perToken: BytesPerToken,
  maxModelLen: number,
  configured: number,
  fallback: number,
): number {
  if (configured > 0) return configured;
  if ('bytes' in perToken) return Math.max(1, maxModelLen - 1) * perToken.bytes;
  return fallback;
}
