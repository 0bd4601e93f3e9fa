// vLLM's bad_words as token sequences, tokenized as vLLM does: each word as written (leading spaces
// stripped) and, when it tokenizes to a different first token of the same length, with one leading space,
// so that the word is banned both at the start of the text and after a space. Which token of a sequence
// is masked when is the runner's business (runner/bad-words.ts).
import { invalid } from './errors.js';
import type { LoadedModel } from './model-slot.js';

export async function tokenizeBadWords(
  model: LoadedModel,
  words: string[] | null | undefined,
): Promise<number[][] | undefined> {
  if (!words || words.length === 0) return undefined;
  const sequences: number[][] = [];
  for (const [i, word] of words.entries()) {
    const bare = word.trimStart();
    if (bare === '') throw invalid(`bad_words[${i}] is empty`, 'bad_words');
    const plain = await model.prompts.encode(bare, false);
    const spaced = await model.prompts.encode(` ${bare}`, false);
    if (plain.length > 0) sequences.push(plain);
    if (spaced.length > 0 && spaced.length === plain.length && spaced[0] !== plain[0]) sequences.push(spaced);
  }
  return sequences.length > 0 ? sequences : undefined;
}
