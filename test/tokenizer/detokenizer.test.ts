import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, test, vi } from 'vitest';
import { IncrementalDetokenizer } from '../../src/tokenizer/detokenizer.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';

const modelDir = resolve(__dirname, '../../models/stories260K');
const expected = JSON.parse(readFileSync(resolve(modelDir, 'expected.json'), 'utf8')) as Array<{
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
  greedy_text: string;
}>;

let tok: TextTokenizer;
beforeAll(async () => {
  tok = await TextTokenizer.load(modelDir);
});

describe('TextTokenizer', () => {
  test('encodes every expected.json prompt to transformers prompt_ids (BOS from the post-processor)', () => {
    for (const e of expected) expect(tok.encode(e.prompt)).toEqual(e.prompt_ids);
  });
  test('special tokens, EOS and the chat template come from the model folder', () => {
    expect(tok.eosTokenIds).toEqual([2]);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.specialTokens.bos_token).toBe('<s>');
    expect(tok.chatTemplate).toContain('messages');
    expect(tok.vocabSize).toBe(512);
    expect(tok.encode('Once', false)[0]).not.toBe(1);
  });
});

describe('IncrementalDetokenizer', () => {
  // greedy_text is transformers' decode of the completion alone, which drops the first token's leading
  // space; decoded after its prompt, the completion keeps it (as text appended to the prompt must).
  test('token-by-token text is the completion as it follows the prompt', () => {
    for (const e of expected) {
      const d = new IncrementalDetokenizer(tok, e.prompt_ids);
      let text = '';
      for (const id of e.greedy_ids) text += d.push([id]);
      text += d.flush();
      const whole = tok.decode([...e.prompt_ids, ...e.greedy_ids]);
      expect(whole.startsWith(tok.decode(e.prompt_ids))).toBe(true);
      expect(text).toBe(whole.slice(tok.decode(e.prompt_ids).length));
      expect(text.trimStart()).toBe(e.greedy_text);
    }
  });

  test('never emits half of a multi-byte character (byte-fallback tokens)', () => {
    const s = 'Tom said € and 你好 🙂 ok';
    const ids = tok.encode(s, false);
    expect(ids.length).toBeGreaterThan(s.length / 2); // byte fallback really happened
    const d = new IncrementalDetokenizer(tok, [1]);
    let text = '';
    for (const id of ids) {
      const piece = d.push([id]);
      expect(piece).not.toContain('\uFFFD');
      text += piece;
    }
    text += d.flush();
    expect(text).toBe(tok.decode(ids));
    expect(text).toBe(s);
  });

  test('primed ahead of the first token, that token costs one decode, and every text is the same', () => {
    const decode = vi.spyOn(tok, 'decode');
    try {
      const s = 'Tom said € ok';
      const ids = tok.encode(s, false);
      for (const prompt of [...expected.map((e) => e.prompt_ids), [1]]) {
        const plain = new IncrementalDetokenizer(tok, prompt);
        const primed = new IncrementalDetokenizer(tok, prompt);
        primed.prime();
        primed.prime(); // once is enough
        decode.mockClear();
        const first = primed.push([ids[0]!]);
        expect(decode).toHaveBeenCalledTimes(1);
        expect(first).toBe(plain.push([ids[0]!]));
        // The held-back bytes of € keep the primed context too: the same text token by token.
        for (const id of ids.slice(1)) expect(primed.push([id])).toBe(plain.push([id]));
        expect(primed.flush()).toBe(plain.flush());
      }
    } finally {
      decode.mockRestore();
    }
  });

  test('pushing several tokens at once gives the same text', () => {
    const e = expected[0]!;
    const d = new IncrementalDetokenizer(tok, e.prompt_ids);
    let text = '';
    for (let i = 0; i < e.greedy_ids.length; i += 7) text += d.push(e.greedy_ids.slice(i, i + 7));
    expect((text + d.flush()).trimStart()).toBe(e.greedy_text);
  });
});

describe('synthetic tokenizer (dummy weights without tokenizer.json)', () => {
  test('one word per id over the whole vocabulary; decodes what a random model generates', async () => {
    const configPath = resolve(__dirname, '../../configs/llama-3-8b.json');
    const t = await TextTokenizer.forModel(resolve(__dirname, '../../configs'), { dummy: true, configPath });
    expect(t.vocabSize).toBe(128256);
    expect(t.encode('w5 w128255 w77')).toEqual([1, 5, 128255, 77]);
    // Anything else is <unk> (0), specials split out; the ids the library gave the synthetic WordPiece model
    // (which this WordLevel one replaced) for the same texts.
    expect(t.encode('w5 hello w128256 w0 <s>w7</s>')).toEqual([1, 5, 0, 0, 0, 1, 7, 2]);
    expect(t.encode(`w12abc w05 W5 w${'1'.repeat(120)}`, false)).toEqual([0, 0, 0, 0]);
    expect(t.encode('  w7\tw8\nw9  ', false)).toEqual([7, 8, 9]);
    const d = new IncrementalDetokenizer(t, [1, 5]);
    expect(d.push([6]) + d.push([7, 128255]) + d.flush()).toBe(' w6 w7 w128255');
  });
  test('is never used for real weights', async () => {
    await expect(
      TextTokenizer.forModel(resolve(__dirname, '../../configs'), { dummy: false, configPath: '' }),
    ).rejects.toThrow(/no tokenizer\.json/);
  });
});
