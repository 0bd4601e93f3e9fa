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

/** Writes tokenizer.json and tokenizer_config.json into dir (for `kvserve bench --tokenizer dir`). */
export function writeSyntheticTokenizer(dir: string, vocabSize: number): void {
  const { tokenizer, config } = syntheticTokenizerFiles(vocabSize);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2));
}
