// The synthetic tokenizer's direct encode gives exactly the ids @huggingface/tokenizers gives for the same
// tokenizer.json, on arbitrary text made of the pieces that matter (w-words, digits, specials and their fragments,
// Unicode whitespace, other text), with and without special tokens, for small and large vocabularies.
import { resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { syntheticEncoder, syntheticTokenizerFiles } from '../../src/tokenizer/synthetic.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';

const PIECES = [
  'w',
  'W',
  '0',
  '1',
  '3',
  '7',
  '9',
  '12',
  '31999',
  '32000',
  '128255',
  '128256',
  '<s>',
  '</s>',
  '<unk>',
  '<',
  '>',
  '/',
  's',
  'unk',
  ' ',
  '  ',
  '\t',
  '\n',
  '\u00a0',
  '\u2028',
  '\u3000',
  '\ufeff',
  'é',
  '😀',
  'x',
  '-',
  '.',
];
// w-words of every shape (leading zeros, the vocabulary's ends, too long) among the pieces.
const word = fc.stringMatching(/^[0-9]{0,17}$/).map((digits) => `w${digits}`);
const text = fc.array(fc.oneof(word, fc.constantFrom(...PIECES)), { maxLength: 40 }).map((p) => p.join(''));

describe('the synthetic tokenizer encoded directly', () => {
  for (const vocab of [64, 32000, 128256]) {
    it(`gives the library's ids for a vocabulary of ${vocab}`, () => {
      const { tokenizer, config } = syntheticTokenizerFiles(vocab);
      const library = new Tokenizer(tokenizer, config);
      const direct = syntheticEncoder(vocab);
      fc.assert(
        fc.property(text, fc.boolean(), (t, special) => {
          expect(direct(t, special)).toEqual(library.encode(t, { add_special_tokens: special }).ids);
        }),
        { numRuns: 2000 },
      );
    });
  }

  it('is what a dummy model without tokenizer.json encodes with, words of a 2,048-token prompt included', async () => {
    const configPath = resolve(__dirname, '../../configs/llama-3-8b.json');
    const t = await TextTokenizer.forModel(resolve(__dirname, '../../configs'), { dummy: true, configPath });
    const { tokenizer, config } = syntheticTokenizerFiles(128256);
    const library = new Tokenizer(tokenizer, config);
    const prompt = Array.from({ length: 2048 }, (_, i) => `w${3 + ((i * 7919) % 128253)}`).join(' ');
    expect(t.encode(prompt)).toEqual(library.encode(prompt).ids);
    expect(t.encode(prompt)).toHaveLength(2049);
  });
});
