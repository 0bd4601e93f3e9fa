// bannedNext against vLLM's rule, written out case by case: a one-token word is always banned; a longer
// word bans its last token only when the output (never the prompt) ends with the word's other tokens.
import { describe, expect, it } from 'vitest';
import { bannedNext } from '../../src/runner/bad-words.js';

describe('bannedNext', () => {
  const words = [[7], [3, 4], [5, 6, 9]];

  it('a one-token word is banned from the first output token on', () => {
    expect(bannedNext([[7]], [1, 2], 2)).toEqual([7]);
  });

  it('a longer word bans its last token right after its prefix, and only then', () => {
    expect(bannedNext(words, [1, 3], 1)).toEqual([7, 4]);
    expect(bannedNext(words, [1, 3, 8], 1)).toEqual([7]);
    expect(bannedNext(words, [1, 2, 5, 6], 1)).toEqual([7, 9]);
    expect(bannedNext(words, [1, 2, 6, 6], 1)).toEqual([7]);
  });

  it('the prompt does not count towards a prefix', () => {
    expect(bannedNext(words, [1, 3], 2)).toEqual([7]); // 3 is the prompt's
    expect(bannedNext(words, [5, 6], 1)).toEqual([7]); // 5 is the prompt's, 6 the output's
    expect(bannedNext(words, [9, 5, 6], 1)).toEqual([7, 9]);
  });
});
