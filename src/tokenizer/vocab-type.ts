// How a tokenizer.json's vocabulary spells text, as xgrammar's TokenizerInfo needs to know it to match tokens
// against a grammar: "byte_level" (GPT-2 style: bytes mapped to printable characters, Ġ for a space),
// "byte_fallback" (SentencePiece style: ▁ for a space, <0xNN> tokens for raw bytes) or "raw" (tokens are the
// text). The rules are xgrammar's own (HFTokenizerAnalyzer in its tokenizer_info.cc): the decoder decides the
// type, and a Prepend "▁" normalizer or a Metaspace pre-tokenizer that prepends means a leading space is added.

export type VocabType = 'byte_level' | 'byte_fallback' | 'raw';

export interface VocabDecoding {
  vocabType: VocabType;
  /** The tokenizer adds a space before the text (the first token of "Hi" is "▁Hi"). */
  addPrefixSpace: boolean;
}

type Json = Record<string, unknown>;

/** The components of a tokenizer.json part, one level of Sequence unwrapped. */
function parts(v: unknown, key: 'decoders' | 'normalizers'): Json[] {
  if (!v || typeof v !== 'object') return [];
  const o = v as Json;
  if (o.type === 'Sequence' && Array.isArray(o[key]))
    return (o[key] as unknown[]).filter((x): x is Json => !!x && typeof x === 'object');
  return [o];
}

export function vocabDecoding(tokenizerJson: Json): VocabDecoding {
  let vocabType: VocabType = 'raw';
  for (const d of parts(tokenizerJson.decoder, 'decoders')) {
    if (d.type === 'ByteLevel') {
      vocabType = 'byte_level';
      break;
    }
    if (d.type === 'ByteFallback') {
      vocabType = 'byte_fallback';
      break;
    }
  }
  const prepend = parts(tokenizerJson.normalizer, 'normalizers').some((n) => n.type === 'Prepend' && n.prepend === '▁');
  const pre = tokenizerJson.pre_tokenizer as Json | null | undefined;
  const metaspace = pre?.type === 'Metaspace' && (pre.prepend_scheme === 'always' || pre.prepend_scheme === 'first');
  return { vocabType, addPrefixSpace: prepend || metaspace };
}
