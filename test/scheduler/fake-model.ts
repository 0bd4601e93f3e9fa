// A fake "model" for scheduler and engine tests: it keeps a real paged KV cache (one number per slot) and
// computes each token's KV from the token, its position and the KV of the previous position *read through
// the block table*, as attention would. The sampled token is a function of the last KV value. So a request
// gets the same tokens as the naive reference below exactly when every block it reads holds its own prefix:
// a wrongly shared, freed-too-early or overwritten block changes its output.
import type { NativeEngine, NativeEngineInfo, StepBatch, StepResult } from '../../src/runner/binding.js';

export const ROOT = 0x1234567;

/** KV value of a token at `pos` following a prefix whose last KV value is `prev`. */
export function kvValue(prev: number, token: number, pos: number): number {
  let h = Math.imul(prev ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(token + 1, 0xc2b2ae35) ^ Math.imul(pos + 7, 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return h >>> 0;
}

/** The token sampled from KV value v; ids with a -inf bias (min_tokens masking) or outside the row's
 *  allowed-token mask are skipped. */
export function sampleFrom(v: number, vocab: number, masked: (id: number) => boolean): number {
  let t = v % vocab;
  for (let i = 0; i < vocab && masked(t); i++) t = (t + 1) % vocab;
  return t;
}

export interface RefParams {
  maxTokens: number;
  minTokens: number;
  stopIds: number[]; // EOS (unless ignored) and stop token ids
  maxModelLen: number;
  vocab: number;
}

/** Naive reference: the request alone, token by token. Returns the generated tokens (stop token included). */
export function referenceGenerate(prompt: number[], p: RefParams): number[] {
  const tokens = prompt.slice();
  let v = ROOT;
  for (let i = 0; i < tokens.length; i++) v = kvValue(v, tokens[i]!, i);
  const out: number[] = [];
  for (;;) {
    const masked = out.length < p.minTokens;
    const t = sampleFrom(v, p.vocab, (id) => masked && p.stopIds.includes(id));
    out.push(t);
    tokens.push(t);
    if (out.length - 1 >= p.minTokens && p.stopIds.includes(t)) break;
    if (out.length >= p.maxTokens || tokens.length >= p.maxModelLen) break;
    v = kvValue(v, t, tokens.length - 1);
  }
  return out;
}

export class FakeModel implements NativeEngine {
  readonly kv: Float64Array; // [numBlocks * blockSize], NaN = never written
  steps = 0;
  /** Set to make step() reject (once per call while it returns true). */
  failWhen: ((batch: StepBatch) => boolean) | undefined;
  /** Delay of the async step in ms (0 = next macrotask). */
  delayMs = 0;
  private busy = false;
  /** What each step was given (for tests of seeds and batch sizes). */
  readonly seen: Array<{ seeds: number[]; seedSteps: number[]; tokens: number; seqs: number; masked: number }> = [];

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly vocab: number,
    readonly maxModelLen = 1 << 20,
  ) {
    this.kv = new Float64Array(numBlocks * blockSize).fill(NaN);
  }

  info(): NativeEngineInfo {
    return {
      architecture: 'Fake',
      modelType: 'fake',
      hiddenSize: 0,
      intermediateSize: 0,
      numLayers: 0,
      numHeads: 0,
      numKvHeads: 0,
      headDim: 0,
      vocabSize: this.vocab,
      maxModelLen: this.maxModelLen,
      bosTokenId: -1,
      eosTokenIds: [2],
      device: 'cpu',
      dtype: 'float32',
      kvCacheDtype: 'float32',
      blockSize: this.blockSize,
      numKvBlocks: this.numBlocks,
      kvBlockBytes: 0,
      weightBytes: 0,
      gemmShapesImported: 0,
      gemmShapesPlanned: 0,
    };
  }

  dispose(): void {}

  step(batch: StepBatch): Promise<StepResult> {
    if (this.busy) return Promise.reject(new Error('a step is already in flight'));
    this.busy = true;
    return new Promise((resolve, reject) => {
      setTimeout(() => {
        this.busy = false;
        try {
          if (this.failWhen?.(batch)) throw new Error('injected step failure');
          resolve(this.stepSync(batch));
        } catch (err) {
          reject(err);
        }
      }, this.delayMs);
    });
  }

  stepSync(b: StepBatch): StepResult {
    this.steps++;
    const bs = this.blockSize;
    const S = b.queryStart.length - 1;
    const stride = b.maxBlocksPerSeq;
    if (b.blockTables.length !== S * stride) throw new Error('blockTables has the wrong size');
    const slotOf = (s: number, pos: number): number => {
      const block = b.blockTables[s * stride + Math.floor(pos / bs)]!;
      if (block < 0 || block >= this.numBlocks) throw new Error(`seq ${s} reads block ${block} at position ${pos}`);
      return block * bs + (pos % bs);
    };
    const values = new Float64Array(b.tokenIds.length);
    for (let s = 0; s < S; s++) {
      for (let t = b.queryStart[s]!; t < b.queryStart[s + 1]!; t++) {
        const pos = b.positions[t]!;
        if (b.slotMapping[t] !== slotOf(s, pos)) throw new Error(`slotMapping[${t}] disagrees with the block table`);
        const prev = pos === 0 ? ROOT : this.kv[slotOf(s, pos - 1)]!;
        if (Number.isNaN(prev)) throw new Error(`seq ${s} reads unwritten KV at position ${pos - 1}`);
        values[t] = kvValue(prev, b.tokenIds[t]!, pos);
        this.kv[b.slotMapping[t]!] = values[t]!;
      }
      const last = b.queryStart[s + 1]! - 1;
      if (b.contextLens[s] !== b.positions[last]! + 1)
        throw new Error(`contextLens[${s}] is not the last position + 1`);
    }
    const R = b.sampleIndices.length;
    const tokens = new Int32Array(R);
    for (let r = 0; r < R; r++) {
      const masked = new Set<number>();
      if (b.biasStart) {
        for (let i = b.biasStart[r]!; i < b.biasStart[r + 1]!; i++)
          if (b.biasValues![i] === -Infinity) masked.add(b.biasTokens![i]!);
      }
      const m =
        b.maskRow && b.maskRow[r]! >= 0 ? b.masks!.subarray(b.maskRow[r]! * Math.ceil(this.vocab / 32)) : undefined;
      const outside = (id: number) => m !== undefined && ((m[id >> 5]! >>> (id & 31)) & 1) === 0;
      tokens[r] = sampleFrom(values[b.sampleIndices[r]!]!, this.vocab, (id) => masked.has(id) || outside(id));
    }
    // Log-probabilities are made up but shaped as the protocol says: K = the largest numLogprobs, rows
    // asking fewer padded with -1; the top ids are the sampled token and the ones after it.
    let K = 0;
    for (let r = 0; r < R; r++) K = Math.max(K, b.numLogprobs[r]!);
    const logprobs = new Float32Array(R).fill(NaN);
    const topIds = new Int32Array(R * K).fill(-1);
    const topValues = new Float32Array(R * K).fill(NaN);
    for (let r = 0; r < R; r++) {
      if (b.numLogprobs[r]! < 0) continue;
      logprobs[r] = -0.5;
      for (let i = 0; i < b.numLogprobs[r]!; i++) {
        topIds[r * K + i] = (tokens[r]! + i) % this.vocab;
        topValues[r * K + i] = -0.5 - i;
      }
    }
    const masked = b.maskRow ? b.maskRow.filter((m) => m >= 0).length : 0;
    this.seen.push({ seeds: [...b.seeds], seedSteps: [...b.seedSteps], tokens: b.tokenIds.length, seqs: S, masked });
    return { tokens, logprobs, topLogprobs: K, topIds, topValues };
  }
}
