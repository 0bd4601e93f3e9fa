// The TypeScript half of `kvserve build --quantization fp8 --device cuda`: the held-out text its quality is
// measured on, and the manifest's quantization section. The method needs no calibration pass: weights are
// quantized per output channel from their own abs-max, activations per token at run time (engines/cuda).
import { readFileSync } from 'node:fs';
import type { NativeBuildResult } from '../runner/binding.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { evalSamples, sampleMaxLen } from './calibration-data.js';
import type { Fp8Quantization } from './manifest.js';
import { qualityLine, type QualityReport } from './quality.js';

export interface Fp8Plan {
  evalData: string;
  evalSamples: number[][];
  maxLen: number;
}

export async function planFp8(
  evalData: string,
  model: { dir: string; configPath: string; dummy: boolean; maxModelLen: number },
): Promise<Fp8Plan> {
  const config = JSON.parse(readFileSync(model.configPath, 'utf8')) as { max_position_embeddings?: number };
  const maxLen = sampleMaxLen(config.max_position_embeddings, model.maxModelLen);
  const tok = await TextTokenizer.forModel(model.dir, { dummy: model.dummy, configPath: model.configPath });
  return { evalData, evalSamples: evalSamples(tok, evalData, maxLen), maxLen };
}

/** Layer matrices the fp8 layout keeps in the compute dtype (rows not a multiple of 16 elements), by module. */
function keptMatrices(built: NativeBuildResult): Array<{ name: string; why: string }> {
  const kept = new Map<string, { layers: number; k: number }>();
  for (const t of built.tensors) {
    const m = /^model\.layers\.\d+\.((self_attn|mlp)\.\w+_proj)\.weight$/.exec(t.name);
    if (!m || t.dtype === 'float8_e4m3fn') continue;
    const e = kept.get(m[1]!) ?? { layers: 0, k: t.shape[1]! };
    e.layers++;
    kept.set(m[1]!, e);
  }
  return [...kept].map(([name, e]) => ({
    name: `${name} (${e.layers} layers)`,
    why: `its rows are ${e.k} elements, not a multiple of 16 (FP8 GEMMs read 16-byte rows)`,
  }));
}

export function fp8Section(quality: QualityReport | null, evalData: string, built: NativeBuildResult): Fp8Quantization {
  return {
    method: 'fp8',
    scheme:
      'W8A8 FP8 (E4M3): the decoder layers’ q/k/v, o, gate/up and down weights with a float32 scale per output ' +
      'channel (abs-max / 448); activations quantized per token at run time; FP8 GEMMs through cuBLASLt, and ' +
      'our fp8 GEMV for small batches',
    keptInFloat: [
      { name: 'lm_head', why: 'the output projection stays in the compute dtype (as TensorRT-LLM and vLLM keep it)' },
      { name: 'model.embed_tokens', why: 'a lookup, not a GEMM' },
      ...keptMatrices(built),
    ],
    quality: quality ? { file: evalData, ...quality } : null,
  };
}

/** The quality line for the build's output and engine-info. */
export function fp8Summary(q: Fp8Quantization): string[] {
  const out = [`fp8: ${q.scheme}`, `kept in the compute dtype: ${q.keptInFloat.map((k) => k.name).join(', ')}`];
  if (q.quality) out.push(qualityLine(q.quality, 'unquantized', 'fp8'));
  return out;
}
