// The nested-Map merge ranks give exactly the ids of @huggingface/tokenizers' own BPE lookup (the reference: the
// same library, the same tokenizer.json, unpatched), on BPE vocabularies with and without a pre-tokenizer and
// on text that exercises merges, byte fallback and unknown characters.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultModelDir } from '../../src/config.js';
import { useFastMergeRanks } from '../../src/tokenizer/bpe-ranks.js';
import { syntheticTokenizerFiles } from '../../src/tokenizer/synthetic.js';

type Json = Record<string, unknown>;
const stories = JSON.parse(readFileSync(join(defaultModelDir, 'tokenizer.json'), 'utf8')) as Json;
const config = JSON.parse(readFileSync(join(defaultModelDir, 'tokenizer_config.json'), 'utf8')) as Json;
const model = stories.model as Json & { merges: Array<[string, string]> };
// "i t", listed again at the end: ranked last, which changes how "little" splits.
const IT = model.merges.find(([a, b]) => a === 'i' && b === 't')!;
// stories260K's own (no pre-tokenizer: a prompt is one BPE word), one that splits words first (each word once,
// then from the library's word cache), and one whose merge list repeats a pair (the later rank counts).
const variants: Array<[string, Json]> = [
  ['stories260K', stories],
  [
    'stories260K split by a Metaspace pre-tokenizer',
    {
      ...stories,
      normalizer: null,
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    },
  ],
  ['stories260K with a repeated merge', { ...stories, model: { ...model, merges: [...model.merges, IT] } }],
];

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ';

describe('fast BPE merge ranks', () => {
  for (const [name, json] of variants) {
    it(`${name}: the same ids as the library's own lookup`, () => {
      const reference = new Tokenizer(json, config);
      const fast = new Tokenizer(json, config);
      expect(useFastMergeRanks(fast)).toBe(true);
      const same = (text: string) => {
        expect(fast.encode(text).ids).toEqual(reference.encode(text).ids);
        expect(fast.encode(text, { add_special_tokens: false }).ids).toEqual(
          reference.encode(text, { add_special_tokens: false }).ids,
        );
      };
      same(STORY.repeat(40)); // one long word of merges (no pre-tokenizer)
      same('');
      same('héllo wörld 😀 名前 \u0000\u0007 <s>special</s> ----- aaaaaaaaaaaaaaaa');
      fc.assert(
        fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), fc.string({ maxLength: 60 }), (a, b) =>
          same(a + STORY + b),
        ),
        { numRuns: 150 },
      );
    });
  }

  it('a repeated merge keeps its later rank, as the library has it', () => {
    const repeated = new Tokenizer(variants[2]![1], config);
    expect(repeated.encode(STORY).ids).not.toEqual(new Tokenizer(stories, config).encode(STORY).ids);
  });

  it('leaves a model without BPE merges as it is', () => {
    const { tokenizer, config } = syntheticTokenizerFiles(100);
    expect(useFastMergeRanks(new Tokenizer(tokenizer, config))).toBe(false);
  });
});
