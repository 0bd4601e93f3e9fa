// The prompt byte bound is sound: any text longer than (maxModelLen − 1) × bytesPerToken tokenizes, by the
// real tokenizer (@huggingface/tokenizers, not our code), into more tokens than leave room for one generated
// token. Checked on stories260K's SentencePiece-style BPE and on a byte-level BPE with NFC (where Hangul jamo
// compose 9 bytes into one 3-byte syllable, which is why the normalizer's shrink factor is needed); and no
// bound is derived for tokenizers that can drop text or fold a run into one token.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultModelDir } from '../../src/config.js';
import { bytesPerToken, promptByteLimit } from '../../src/tokenizer/prompt-bound.js';
import { syntheticTokenizerFiles } from '../../src/tokenizer/synthetic.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
/** Repeats the pieces (in order) until the text is just over `limit` bytes. */
const justOver = (pieces: string[], limit: number) => {
  let text = '';
  for (let i = 0; bytes(text) <= limit; i++) text += pieces[i % pieces.length];
  return text;
};
const CONTEXT = 24; // small, so texts just over the bound are cheap to tokenize

describe('stories260K (BPE with byte fallback, Prepend/Replace normalizer)', () => {
  let tok: TextTokenizer;
  let pieces: string[];
  beforeAll(async () => {
    tok = await TextTokenizer.load(defaultModelDir);
    // The surface text of every ordinary vocabulary entry: the adversary packs the longest tokens.
    pieces = [];
    for (let id = 3; id < tok.vocabSize; id++) {
      const t = tok.idToToken(id)!;
      if (!/^<0x[0-9A-F]{2}>$/.test(t)) pieces.push(t.replaceAll('▁', ' '));
    }
  });

  it('one token stands for at most 9 bytes: "▁friend" is the longest entry', () => {
    expect(tok.bytesPerToken).toEqual({ bytes: 9 });
    expect(promptByteLimit(tok.bytesPerToken, 512, 0, 1 << 23)).toBe(511 * 9);
  });

  it('any text over the bound has no room left in the context', () => {
    const limit = promptByteLimit(tok.bytesPerToken, CONTEXT, 0, 1 << 23);
    const packed = fc.array(fc.constantFrom(...pieces), { minLength: 1, maxLength: 40 });
    const unicode = fc.array(fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }), {
      minLength: 1,
      maxLength: 40,
    });
    fc.assert(
      fc.property(fc.oneof(packed, unicode), (p) => {
        const text = justOver(p, limit);
        expect(tok.encode(text, false).length).toBeGreaterThan(CONTEXT - 1);
      }),
      { numRuns: 400 },
    );
  });
});

/** GPT-2's byte → character map of byte-level BPE vocabularies. */
function byteChars(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + n++));
  return out;
}

/** A byte-level BPE with an NFC normalizer whose only merges build the syllable 각 (bytes EA B0 81). */
function byteLevelNfc() {
  const chars = byteChars();
  const vocab: Record<string, number> = {};
  for (const [i, c] of chars.entries()) vocab[c] = i;
  const [a, b, c] = [chars[0xea]!, chars[0xb0]!, chars[0x81]!];
  vocab[a + b] = 256;
  vocab[a + b + c] = 257;
  return {
    version: '1.0',
    added_tokens: [],
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [`${a} ${b}`, `${a}${b} ${c}`],
    },
  };
}

describe('byte-level BPE with NFC', () => {
  const json = byteLevelNfc();
  const tok = new Tokenizer(json, {});
  const encode = (s: string) => tok.encode(s, { add_special_tokens: false }).ids;
  const JAMO = '\u1100\u1161\u11a8'; // ㄱ ㅏ ㄱ: 9 bytes that NFC composes into 각 (3 bytes), one token here

  it('the longest token is 6 bytes of mapped characters; NFC can shrink text 3×, so B = 18', () => {
    expect(encode(JAMO.repeat(5))).toEqual([257, 257, 257, 257, 257]);
    expect(bytesPerToken(json)).toEqual({ bytes: 18 });
  });

  it('without the shrink factor the bound would refuse a prompt that fits', () => {
    const text = JAMO.repeat(CONTEXT - 4); // 20 tokens, 180 bytes
    expect(encode(text).length).toBeLessThan(CONTEXT);
    expect(bytes(text)).toBeGreaterThan((CONTEXT - 1) * 6);
    expect(bytes(text)).toBeLessThanOrEqual(promptByteLimit(bytesPerToken(json), CONTEXT, 0, 1 << 23));
  });

  it('any text over the bound has no room left in the context', () => {
    const limit = promptByteLimit(bytesPerToken(json), CONTEXT, 0, 1 << 23);
    const parts = fc.constantFrom(JAMO, '각', 'a', ' ', 'é', 'e\u0301', '\uff21', '\u212a', '😀');
    fc.assert(
      fc.property(fc.array(parts, { minLength: 1, maxLength: 60 }), (p) => {
        expect(encode(justOver(p, limit)).length).toBeGreaterThan(CONTEXT - 1);
      }),
      { numRuns: 300 },
    );
  });
});

describe('tokenizers that admit no bound', () => {
  const stories = JSON.parse(readFileSync(join(defaultModelDir, 'tokenizer.json'), 'utf8'));
  const cases: Array<[string, object, RegExp]> = [
    ['WordLevel (a long word is one [UNK])', syntheticTokenizerFiles(64).tokenizer, /WordLevel/],
    ['a Strip normalizer', { ...stories, normalizer: { type: 'Strip', strip_left: true, strip_right: true } }, /Strip/],
    [
      'a whitespace-dropping pre-tokenizer',
      { ...stories, pre_tokenizer: { type: 'WhitespaceSplit' } },
      /WhitespaceSplit/,
    ],
    [
      'a shortening Replace',
      { ...stories, normalizer: { type: 'Replace', pattern: { String: '  ' }, content: ' ' } },
      /Replace/,
    ],
    [
      'fused unknowns without byte fallback',
      { ...stories, model: { ...stories.model, byte_fallback: false, fuse_unk: true } },
      /fuses/,
    ],
  ];
  for (const [what, json, reason] of cases) {
    it(what, () => {
      const b = bytesPerToken(json as Record<string, unknown>);
      expect('reason' in b && b.reason).toMatch(reason);
      // The server then tokenizes whatever the body limit lets through, unless --max-prompt-bytes says otherwise.
      expect(promptByteLimit(b, 512, 0, 1 << 23)).toBe(1 << 23);
      expect(promptByteLimit(b, 512, 10_000, 1 << 23)).toBe(10_000);
    });
  }
});
