// The quality of a quantized engine, measured rather than assumed: the engine as built (loaded from its
// folder, exactly as `serve --engine` would) and the unquantized model read the same held-out text with
// teacher forcing, every position's logits through the real step. Reported: each one's perplexity of the
// text, and how often the engine's top-1 next token is the unquantized model's.
import {
  type Device,
  greedyRows,
  loadNative,
  type NativeEngine,
  type NativeEngineOptions,
  type StepBatch,
} from '../runner/binding.js';

/** "quality on N held-out tokens of FILE: perplexity A <reference>, B <quantized> (+x%), top-1 agreement y%". */
export function qualityLine(q: QualityReport & { file: string }, reference: string, quantized: string): string {
  const p = q.perplexity;
  return (
    `quality on ${q.tokens} held-out tokens of ${q.file}: perplexity ${p.float.toFixed(3)} ${reference}, ` +
    `${p.quantized.toFixed(3)} ${quantized} (${((p.ratio - 1) * 100).toFixed(2)}%), top-1 agreement ${(q.top1Agreement * 100).toFixed(2)}%`
  );
}

export interface QualityReport {
  samples: number;
  tokens: number; // predicted positions
  perplexity: { float: number; quantized: number; ratio: number }; // the unquantized model's, the engine's
  top1Agreement: number; // fraction of positions where both models' argmax agree
}

export const blockSize = 16;

/** An engine that reads samples of up to maxLen tokens, each one prefill step into slots 0 .. maxLen - 1 (model ''
 *  and the default weights and dtype: the caller names what to load). */
export function sampleEngineOptions(
  device: Device,
  threads: number,
  maxLen: number,
  maxNumSeqs: number,
): NativeEngineOptions {
  return {
    model: '',
    dummyWeights: false,
    device,
    dtype: 'auto',
    numThreads: threads,
    blockSize,
    numKvBlocks: Math.ceil(maxLen / blockSize),
    kvCacheBytes: 0,
    gpuMemoryUtilization: 0.9,
    maxNumBatchedTokens: maxLen,
    maxNumSeqs,
    maxModelLen: maxLen,
    seed: 0,
  };
}

/** One sample as one prefill step into slots 0 .. n-1; with `predict`, every position but the last predicts the
 *  next token (its logits come back), else nothing is sampled. */
export function prefillBatch(ids: number[], predict: boolean): StepBatch {
  const n = ids.length;
  const blocks = Math.ceil(n / blockSize);
  const R = predict ? n - 1 : 0;
  return {
    tokenIds: Int32Array.from(ids),
    positions: Int32Array.from(ids, (_, i) => i),
    queryStart: Int32Array.from([0, n]),
    contextLens: Int32Array.from([n]),
    blockTables: Int32Array.from({ length: blocks }, (_, i) => i),
    maxBlocksPerSeq: blocks,
    slotMapping: Int32Array.from(ids, (_, i) => i),
    sampleIndices: Int32Array.from({ length: R }, (_, i) => i),
    ...greedyRows(R),
    returnLogits: predict,
  };
}

interface RowStats {
  nll: number; // -log p(next token)
  argmax: number;
}

/** -log softmax(row)[target] in double, and the first argmax. */
function rowStats(logits: Float32Array, offset: number, vocab: number, target: number): RowStats {
  let max = Number.NEGATIVE_INFINITY;
  let argmax = 0;
  for (let v = 0; v < vocab; v++) {
    const x = logits[offset + v]!;
    if (x > max) {
      max = x;
      argmax = v;
    }
  }
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v]! - max);
  return { nll: Math.log(sum) + max - logits[offset + target]!, argmax };
}

async function score(engine: NativeEngine, samples: number[][], onSample: () => void): Promise<RowStats[][]> {
  const vocab = engine.info().vocabSize;
  const out: RowStats[][] = [];
  for (const ids of samples) {
    onSample();
    const r = await engine.step(prefillBatch(ids, true));
    const rows: RowStats[] = [];
    for (let i = 0; i + 1 < ids.length; i++) rows.push(rowStats(r.logits!, i * vocab, vocab, ids[i + 1]!));
    out.push(rows);
  }
  return out;
}

export interface QualityOptions {
  engineDir: string; // the quantized engine folder (its manifest already written)
  reference: Pick<NativeEngineOptions, 'model' | 'dummyWeights' | 'dtype' | 'seed'>; // the unquantized model
  samples: number[][]; // token ids, each at most maxLen long
  maxLen: number;
  threads: number;
  device?: 'cpu' | 'cuda'; // both run on it (default cpu)
  progress?: (fraction: number) => void;
}

export async function measureQuality(o: QualityOptions): Promise<QualityReport> {
  const native = loadNative();
  // maxNumSeqs maxLen: a sample is one step of up to maxLen - 1 sampled rows (the CUDA backend bounds R by it).
  const base = sampleEngineOptions(o.device ?? 'cpu', o.threads, o.maxLen, o.maxLen);
  let done = 0;
  const onSample = () => o.progress?.(done++ / (2 * o.samples.length));
  const run = async (opts: NativeEngineOptions) => {
    const engine = await native.loadEngine(opts);
    try {
      return await score(engine, o.samples, onSample);
    } finally {
      engine.dispose();
    }
  };
  const ref = await run({ ...base, ...o.reference });
  const q = await run({ ...base, engine: o.engineDir });
  let n = 0,
    nllRef = 0,
    nllQ = 0,
    agree = 0;
  for (const [s, rows] of ref.entries()) {
    for (const [i, r] of rows.entries()) {
      const qi = q[s]![i]!;
      n++;
      nllRef += r.nll;
      nllQ += qi.nll;
      if (qi.argmax === r.argmax) agree++;
    }
  }
  const pf = Math.exp(nllRef / n),
    pq = Math.exp(nllQ / n);
  return {
    samples: o.samples.length,
    tokens: n,
    perplexity: { float: pf, quantized: pq, ratio: pq / pf },
    top1Agreement: agree / n,
  };
}
