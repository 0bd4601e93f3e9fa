// vLLM's bad_words, per step: a word of one token is never sampled; a word of several tokens bans its last
// token only right after the output ended with the word's other tokens (the prompt does not count, as in
// vLLM). Pure: the runner asks each step which tokens to mask for the next sample.

/** The tokens `words` ban as the next token after `tokens`, whose output begins at `outputStart`. */
export function bannedNext(
  words: readonly (readonly number[])[],
  tokens: readonly number[],
  outputStart: number,
): number[] {
  const banned: number[] = [];
  const numOutput = tokens.length - outputStart;
  for (const w of words) {
    const prefix = w.length - 1;
    if (prefix > numOutput) continue;
    let match = true;
    for (let i = 0; i < prefix && match; i++) match = tokens[tokens.length - prefix + i] === w[i];
    if (match) banned.push(w[prefix]!);
  }
  return banned;
}
