// A model's tokenizer: tokenizer.json through @huggingface/tokenizers, plus what tokenizer_config.json,
// generation_config.json and config.json say about special tokens and the chat template.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { useFastMergeRanks } from './bpe-ranks.js';
import { bytesPerToken, type BytesPerToken } from './prompt-bound.js';
import { syntheticEncoder, syntheticTokenizerFiles } from './synthetic.js';
import { type VocabDecoding, vocabDecoding } from './vocab-type.js';

export interface SpecialTokens {
  bos_token?: string;
  eos_token?: string;
  unk_token?: string;
  pad_token?: string;
}

type Json = Record<string, unknown>;

function readJson(path: string): Json | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** tokenizer_config.json writes special tokens as a string or as an AddedToken object. */
function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

function idList(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/** The default template: a string, or the entry named "default" of a list of named templates. */
function pickTemplate(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v as Array<{ name?: string; template?: string }>;
    return (named.find((t) => t.name === 'default') ?? named[0])?.template;
  }
  return undefined;
}

/** What a direct encode must give exactly as the library does before it is used (another library version could
 *  split differently): specials inside and between words, ids at and past the vocabulary's ends, odd whitespace. */
const DIRECT_ENCODE_SAMPLES = [
  'w5 w128255 w77',
  'w5 hello w128256 w0 <s>w7</s><unk> w3',
  `w12abc w05 W5 w${'1'.repeat(20)} w w-1 w3.5 ww3`,
  '  w7\tw8\nw9\u00a0w10\u2028w11\ufeffw12  ',
  '<s><s></s x<unk w<s>4',
  '',
];

export class TextTokenizer {
  readonly eosTokenIds: number[];
  readonly bosTokenId: number | undefined;
  readonly specialTokens: SpecialTokens;
  readonly chatTemplate: string | undefined;
  readonly modelMaxLength: number | undefined;
  readonly vocabSize: number;
  /** The most input bytes one token stands for (or why no bound holds): what prompt-bound.ts derives. */
  readonly bytesPerToken: BytesPerToken;
  /** How the vocabulary spells text (for the grammar engine of structured outputs). */
  readonly decoding: VocabDecoding;
  private readonly specialIds: Set<number>;
  /** The synthetic tokenizer's encode, done directly (the same ids as the library's; checked at load). */
  private readonly directEncode: ((text: string, addSpecialTokens: boolean) => number[]) | undefined;

  private constructor(
    private readonly tok: Tokenizer,
    dir: string,
    tokJson: Json,
    tokConfig: Json,
    directEncode?: (text: string, addSpecialTokens: boolean) => number[],
  ) {
    useFastMergeRanks(tok);
    const special: SpecialTokens = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
      const s = tokenString(tokConfig[key]);
      if (s !== undefined) special[key] = s;
    }
    this.specialTokens = special;
    const idOf = (s: string | undefined) => (s === undefined ? undefined : tok.token_to_id(s));

    // EOS ids: generation_config.json (Llama 3 lists several) ∪ config.json ∪ tokenizer_config's eos_token.
    const eos = new Set<number>();
    for (const id of idList(readJson(join(dir, 'generation_config.json'))?.eos_token_id)) eos.add(id);
    for (const id of idList(readJson(join(dir, 'config.json'))?.eos_token_id)) eos.add(id);
    const eosFromConfig = idOf(special.eos_token);
    if (eosFromConfig !== undefined) eos.add(eosFromConfig);
    this.eosTokenIds = [...eos].sort((a, b) => a - b);
    this.bosTokenId = idOf(special.bos_token);

    const templateFile = join(dir, 'chat_template.jinja');
    this.chatTemplate = existsSync(templateFile)
      ? readFileSync(templateFile, 'utf8')
      : pickTemplate(tokConfig.chat_template);
    const maxLen = tokConfig.model_max_length;
    this.modelMaxLength = typeof maxLen === 'number' && maxLen < 1e12 ? maxLen : undefined;

    const added = (tokJson.added_tokens ?? []) as Array<{ id: number; special?: boolean }>;
    this.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    const vocab = (tokJson.model as Json | undefined)?.vocab;
    const baseSize = Array.isArray(vocab)
      ? vocab.length
      : vocab && typeof vocab === 'object'
        ? Object.keys(vocab).length
        : 0;
    this.vocabSize = Math.max(baseSize, ...added.map((t) => t.id + 1));
    this.bytesPerToken = bytesPerToken(tokJson);
    this.decoding = vocabDecoding(tokJson);
    const same = (s: string) =>
      [true, false].every((special) => directEncode?.(s, special).join() === this.libraryEncode(s, special).join());
    this.directEncode = directEncode && DIRECT_ENCODE_SAMPLES.every(same) ? directEncode : undefined;
  }

  /** Loads DIR/tokenizer.json (+ tokenizer_config.json when present). Throws a clear error when missing. */
  static async load(dir: string): Promise<TextTokenizer> {
    const tokJson = readJson(join(dir, 'tokenizer.json'));
    if (!tokJson) throw new Error(`no tokenizer.json in ${dir} (kvserve needs a Hugging Face fast tokenizer)`);
    const tokConfig = readJson(join(dir, 'tokenizer_config.json')) ?? {};
    return new TextTokenizer(new Tokenizer(tokJson, tokConfig), dir, tokJson, tokConfig);
  }

  /**
   * The tokenizer of a model about to be loaded: DIR/tokenizer.json, or — only for --load-format dummy with a
   * bare config (no tokenizer.json beside it) — a synthetic one over the config's vocabulary.
   */
  static async forModel(
    dir: string,
    opts: { dummy: boolean; configPath: string; log?: (msg: string) => void },
  ): Promise<TextTokenizer> {
    if (existsSync(join(dir, 'tokenizer.json')) || !opts.dummy) return TextTokenizer.load(dir);
    const vocab = readJson(opts.configPath)?.vocab_size;
    if (typeof vocab !== 'number') throw new Error(`${opts.configPath} has no vocab_size`);
    opts.log?.(
      `no tokenizer.json in ${dir}: using a synthetic tokenizer of ${vocab} ids ("w<id>" words) for the dummy weights`,
    );
    const { tokenizer, config } = syntheticTokenizerFiles(vocab);
    const direct = syntheticEncoder(vocab);
    return new TextTokenizer(new Tokenizer(tokenizer, config), dir, tokenizer as Json, config as Json, direct);
  }

  /** With addSpecialTokens the tokenizer's own post-processor decides (e.g. a BOS for Llama 2). */
  encode(text: string, addSpecialTokens = true): number[] {
    return this.directEncode ? this.directEncode(text, addSpecialTokens) : this.libraryEncode(text, addSpecialTokens);
  }

  private libraryEncode(text: string, addSpecialTokens: boolean): number[] {
    return this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    return this.tok.decode(ids as number[], { skip_special_tokens: skipSpecialTokens });
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}
