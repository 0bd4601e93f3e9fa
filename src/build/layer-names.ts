// The linear layers an int8 build quantizes, by their Hugging Face module names (the same list as
// quantizableLayers in engines/cpu/smoothquant.cc), and --keep-precision's patterns over them.
import { ConfigError } from '../config.js';

const PER_LAYER = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
];

export function linearLayerNames(numLayers: number): string[] {
  const out: string[] = [];
  for (let l = 0; l < numLayers; l++) for (const n of PER_LAYER) out.push(`model.layers.${l}.${n}`);
  out.push('lm_head');
  return out;
}

/**
 * A pattern names a layer when it matches the whole name or a dot-separated tail of it, `*` standing for
 * any run of characters: `lm_head`, `down_proj` (every layer's), `layers.0.*`, `model.layers.*.self_attn.o_proj`.
 */
function matcher(pattern: string): (name: string) => boolean {
  const body = pattern
    .split('*')
    .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const re = new RegExp(`(^|\\.)${body}$`);
  return (name) => re.test(name);
}

/** The layers named by a comma list of patterns; a pattern that names none is an error. */
export function resolveKeepPrecision(list: string, names: string[]): string[] {
  const keep = new Set<string>();
  for (const raw of list.split(',')) {
    const pattern = raw.trim();
    if (!pattern) continue;
    const matches = names.filter(matcher(pattern));
    if (matches.length === 0) {
      throw new ConfigError(
        `--keep-precision: no linear layer of this model is named "${pattern}" (names: ` +
          `model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj with N < ` +
          `${(names.length - 1) / PER_LAYER.length}, lm_head; a pattern may name a tail, e.g. down_proj, and use *)`,
      );
    }
    for (const m of matches) keep.add(m);
  }
  return names.filter((n) => keep.has(n));
}
