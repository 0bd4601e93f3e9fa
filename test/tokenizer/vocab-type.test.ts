// How a tokenizer.json's vocabulary spells text, by xgrammar's rules (tokenizer_info.cc's HFTokenizerAnalyzer),
// for the shapes Hugging Face tokenizers write: SentencePiece with byte fallback (Llama 2, the demo), byte-level
// BPE (GPT-2, Llama 3, Qwen), Metaspace pre-tokenizers (newer SentencePiece conversions), and plain ones.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { vocabDecoding } from '../../src/tokenizer/vocab-type.js';
import { storiesDir } from '../native/harness.js';

describe('vocabDecoding', () => {
  it('the demo (Llama 2 style): byte fallback with a prepended ▁', () => {
    const json = JSON.parse(readFileSync(join(storiesDir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    expect(vocabDecoding(json)).toEqual({ vocabType: 'byte_fallback', addPrefixSpace: true });
  });

  it('byte-level BPE, Metaspace, and raw', () => {
    expect(
      vocabDecoding({ decoder: { type: 'ByteLevel', add_prefix_space: true }, pre_tokenizer: { type: 'ByteLevel' } }),
    ).toEqual({
      vocabType: 'byte_level',
      addPrefixSpace: false,
    });
    expect(
      vocabDecoding({
        decoder: { type: 'Sequence', decoders: [{ type: 'Replace' }, { type: 'ByteFallback' }] },
        pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first' },
      }),
    ).toEqual({ vocabType: 'byte_fallback', addPrefixSpace: true });
    expect(
      vocabDecoding({ decoder: { type: 'Metaspace' }, pre_tokenizer: { type: 'Metaspace', prepend_scheme: 'never' } }),
    ).toEqual({
      vocabType: 'raw',
      addPrefixSpace: false,
    });
    expect(vocabDecoding({ decoder: null })).toEqual({ vocabType: 'raw', addPrefixSpace: false });
  });
});
