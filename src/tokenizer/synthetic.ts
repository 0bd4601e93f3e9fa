// A stand-in tokenizer for --load-format dummy when the model folder has no tokenizer.json (a bare preset
// from configs/): every id of the model's vocabulary is one whitespace-separated word "w<id>", so prompts of
// exact token lengths can be built and every generated id decodes to text. Benchmarks of real shapes need
// nothing more; real models always bring their own tokenizer.json.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SYNTHETIC_SPECIALS = ['<unk>', '<s>', '</s>'] as const; // ids 0, 1, 2

export function syntheticTokenizerFiles(vocabSize: number): { tokenizer: object; config: object } {
  if (!Number.isInteger(vocabSize) || vocabSize < SYNTHETIC_SPECIALS.length + 1) {
    throw new Error(`a synthetic tokenizer needs a vocabulary of at least 4 ids, got ${vocabSize}`);
  }
  const vocab: Record<string, number> = {};
  for (const [i, t] of SYNTHETIC_SPECIALS.entries()) vocab[t] = i;
  for (let id = SYNTHETIC_SPECIALS.length; id < vocabSize; id++) vocab[`w${id}`] = id;
  const tokenizer = {
    version: '1.0',
    added_tokens: SYNTHETIC_SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
    // A word is its id or <unk>: a whole-word lookup (WordLevel; @huggingface/tokenizers has no class of that
    // name and reads the model as its plain vocabulary lookup, which is the same). The WordPiece model this
    // replaces gave the same ids (no "##" pieces exist, so a word matched whole or became <unk>) at about 1.5×
    // the cost, which was most of the time to first token of a long text prompt on dummy weights.
    model: { type: 'WordLevel', unk_token: '<unk>', vocab },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    chat_template:
      "{{ bos_token }}{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}assistant {% endif %}",
  };
  return { tokenizer, config };
}

/** The specials split out wherever they stand (as the library's added-token splitter does: none is a prefix of
 *  another, so the leftmost match is the longest). */
const SPECIAL_RE = new RegExp(SYNTHETIC_SPECIALS.join('|'), 'g');
const BOS_ID = 1;
const UNK_ID = 0;

/**
 * The ids @huggingface/tokenizers gives the synthetic tokenizer of `vocabSize`, computed directly: specials split
 * out, the rest split at whitespace (the library's /\S+/), each word its id when it is `w<id>` (no leading zero) of
 * the vocabulary, else <unk>, and a leading <s> with `addSpecialTokens`. The library's generic path costs ~1.6 µs a
 * word (its added-token splitter walks every character; each word is looked up in a Map of the whole vocabulary,
 * twice), 3 ms of the time to first token of a 2,048-word prompt; this costs about a twentieth of that.
 */
export function syntheticEncoder(vocabSize: number): (text: string, addSpecialTokens: boolean) => number[] {
  const idOf = (word: string): number => {
    if (word.length < 2 || word.length > 16 || word.charCodeAt(0) !== 119 /* w */ || word.charCodeAt(1) === 48 /* 0 */)
      return UNK_ID;
    let id = 0;
    for (let i = 1; i < word.length; i++) {
      const d = word.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return UNK_ID;
      id = id * 10 + d;
    }
    return id >= SYNTHETIC_SPECIALS.length && id < vocabSize ? id : UNK_ID;
  };
  const words = (section: string, ids: number[]) => {
    for (const w of section.match(/\S+/g) ?? []) ids.push(idOf(w));
  };
  return (text, addSpecialTokens) => {
    const ids: number[] = addSpecialTokens ? [BOS_ID] : [];
    if (!text.includes('<')) {
      words(text, ids);
      return ids;
    }
    let start = 0;
    for (const m of text.matchAll(SPECIAL_RE)) {
      words(text.slice(start, m.index), ids);
      ids.push((SYNTHETIC_SPECIALS as readonly string[]).indexOf(m[0]));
      start = m.index + m[0].length;
    }
    words(text.slice(start), ids);
    return ids;
  };
}

/** Writes tokenizer.json and tokenizer_config.json into dir (for `kvserve bench --tokenizer dir`). */
export function writeSyntheticTokenizer(dir: string, vocabSize: number): void {
  const { tokenizer, config } = syntheticTokenizerFiles(vocabSize);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2));
}
