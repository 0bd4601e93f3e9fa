// A naive float64 Llama forward pass for the KV-cache calibration tests, written from transformers'
// LlamaForCausalLM (RMSNorm, q/k/v projections, RoPE with rotate_half pairs (i, i + D/2), causal grouped-query
// attention, SiLU-gated MLP) and sharing nothing with the engine: per layer, the K after RoPE and the V that a
// cache holds for every token of a prompt. Float32 checkpoints of the plain llama architecture only (no bias,
// no q/k norm, no RoPE scaling): stories260K.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readTensors } from './safetensors-reader.js';

interface LlamaConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  head_dim?: number;
}

type Matrix = { rows: number; cols: number; data: Float64Array };

export class LlamaReference {
  private readonly c: LlamaConfig;
  private readonly w = new Map<string, Matrix>();
  readonly numLayers: number;

  constructor(dir: string) {
    this.c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as LlamaConfig;
    this.numLayers = this.c.num_hidden_layers;
    for (const [name, t] of readTensors(dir)) {
      if (t.dtype !== 'F32') throw new Error(`${name} is ${t.dtype}; the reference reads float32 checkpoints`);
      const f = new Float32Array(t.bytes.byteLength / 4);
      for (let i = 0; i < f.length; i++) f[i] = t.bytes.readFloatLE(4 * i);
      this.w.set(name, { rows: t.shape[0]!, cols: t.shape[1] ?? 1, data: Float64Array.from(f) });
    }
  }

  private get(name: string): Matrix {
    const m = this.w.get(name);
    if (!m) throw new Error(`no tensor ${name}`);
    return m;
  }

  /** y[n, rows] = x[n, cols] W^T */
  private linear(x: Float64Array[], name: string): Float64Array[] {
    const W = this.get(name);
    return x.map((row) => {
      const y = new Float64Array(W.rows);
      for (let r = 0; r < W.rows; r++) {
        let s = 0;
        for (let k = 0; k < W.cols; k++) s += row[k]! * W.data[r * W.cols + k]!;
        y[r] = s;
      }
      return y;
    });
  }

  private rmsNorm(x: Float64Array[], name: string): Float64Array[] {
    const w = this.get(name).data;
    return x.map((row) => {
      let ss = 0;
      for (const v of row) ss += v * v;
      const inv = 1 / Math.sqrt(ss / row.length + this.c.rms_norm_eps);
      return row.map((v, i) => w[i]! * v * inv);
    });
  }

  private rope(x: Float64Array[], heads: number, D: number): void {
    const half = D / 2;
    for (const [pos, row] of x.entries())
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < half; i++) {
          const angle = pos * this.c.rope_theta ** (-(2 * i) / D);
          const a = row[h * D + i]!,
            b = row[h * D + i + half]!;
          row[h * D + i] = a * Math.cos(angle) - b * Math.sin(angle);
          row[h * D + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
        }
  }

  /** Per layer, what the KV cache holds for the prompt: k[l][t] (after RoPE) and v[l][t], [Hkv * D] each. */
  kvCache(ids: number[]): { k: Float64Array[][]; v: Float64Array[][] } {
    const H = this.c.hidden_size,
      Hq = this.c.num_attention_heads,
      Hkv = this.c.num_key_value_heads;
    const D = this.c.head_dim ?? H / Hq,
      G = Hq / Hkv;
    const E = this.get('model.embed_tokens.weight');
    let x = ids.map((id) => E.data.slice(id * H, (id + 1) * H));
    const out = { k: [] as Float64Array[][], v: [] as Float64Array[][] };
    for (let l = 0; l < this.numLayers; l++) {
      const p = `model.layers.${l}.`;
      const xn = this.rmsNorm(x, `${p}input_layernorm.weight`);
      const q = this.linear(xn, `${p}self_attn.q_proj.weight`);
      const k = this.linear(xn, `${p}self_attn.k_proj.weight`);
      const v = this.linear(xn, `${p}self_attn.v_proj.weight`);
      this.rope(q, Hq, D);
      this.rope(k, Hkv, D);
      out.k.push(k);
      out.v.push(v);
      const attn = q.map((qt, t) => {
        const o = new Float64Array(Hq * D);
        for (let h = 0; h < Hq; h++) {
          const kh = Math.floor(h / G) * D;
          const scores = Array.from({ length: t + 1 }, (_, j) => {
            let s = 0;
            for (let d = 0; d < D; d++) s += qt[h * D + d]! * k[j]![kh + d]!;
            return s / Math.sqrt(D);
          });
          const max = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - max));
          const sum = e.reduce((a, b) => a + b, 0);
          for (let j = 0; j <= t; j++) for (let d = 0; d < D; d++) o[h * D + d]! += (e[j]! / sum) * v[j]![kh + d]!;
        }
        return o;
      });
      const o = this.linear(attn, `${p}self_attn.o_proj.weight`);
      x = x.map((row, t) => row.map((val, i) => val + o[t]![i]!));
      const xn2 = this.rmsNorm(x, `${p}post_attention_layernorm.weight`);
      const gate = this.linear(xn2, `${p}mlp.gate_proj.weight`);
      const up = this.linear(xn2, `${p}mlp.up_proj.weight`);
      const act = gate.map((g, t) => g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[t]![i]!));
      const down = this.linear(act, `${p}mlp.down_proj.weight`);
      x = x.map((row, t) => row.map((val, i) => val + down[t]![i]!));
    }
    return out;
  }
}

/** The largest |x| of each layer's rows. */
export const layerAbsMax = (layers: Float64Array[][]): number[] =>
  layers.map((rows) => rows.reduce((m, r) => r.reduce((a, x) => Math.max(a, Math.abs(x)), m), 0));
