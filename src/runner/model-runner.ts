// Turns one SchedulerOutput into ONE StepBatch of flat typed arrays and runs it. A hot path: every array is
// preallocated at the largest size the config allows and handed to the native side as a subarray view of
// exactly T / S / R elements (the native side reads the sizes from the lengths). Block tables and the ragged
// extras are the exception: their largest size (sequences × the context's blocks) can be gigabytes for a
// long-context model, so they grow to what the batches actually hold. The views must not be
// written while a step is in flight; the engine loop builds the next batch only after the step returns.
import type { NativeEngine, StepBatch, StepResult } from './binding.js';
import { bannedNext } from './bad-words.js';
import type { SchedulerOutput } from '../scheduler/scheduler-output.js';

const NO_BANS: number[] = [];

export interface ModelRunnerConfig {
  maxNumBatchedTokens: number; // T max
  maxNumSeqs: number; // S and R max
  blockSize: number;
}

export class ModelRunner {
  private readonly bs: number;
  // [T] per new token
  private readonly tokenIds: Int32Array;
  private readonly positions: Int32Array;
  private readonly slotMapping: Int32Array;
  // [S] per sequence
  private readonly queryStart: Int32Array; // [S+1]
  private readonly contextLens: Int32Array;
  private blockTables: Int32Array; // [S, stride] with the batch's own stride (its longest table); grown on demand
  // [R] per sampled row
  private readonly sampleIndices: Int32Array;
  private readonly temperature: Float32Array;
  private readonly topP: Float32Array;
  private readonly topK: Int32Array;
  private readonly minP: Float32Array;
  private readonly presencePenalty: Float32Array;
  private readonly frequencyPenalty: Float32Array;
  private readonly repetitionPenalty: Float32Array;
  private readonly seeds: Uint32Array;
  private readonly seedSteps: Int32Array;
  private readonly numLogprobs: Int32Array;
  // Ragged extras, only sent when some row needs them; grown on demand.
  private readonly historyStart: Int32Array; // [R+1]
  private readonly historyOutputStart: Int32Array; // [R]
  private historyTokens = new Int32Array(1024);
  private readonly biasStart: Int32Array; // [R+1]
  private biasTokens = new Int32Array(64);
  private biasValues = new Float32Array(64);
  private readonly maskRow: Int32Array; // [R]
  private masks = new Int32Array(0); // [M * words], grown on demand

  constructor(
    config: ModelRunnerConfig,
    private readonly engine?: NativeEngine,
  ) {
    const T = config.maxNumBatchedTokens;
    const S = config.maxNumSeqs;
    this.bs = config.blockSize;
    this.tokenIds = new Int32Array(T);
    this.positions = new Int32Array(T);
    this.slotMapping = new Int32Array(T);
    this.queryStart = new Int32Array(S + 1);
    this.contextLens = new Int32Array(S);
    this.blockTables = new Int32Array(S * 4);
    this.sampleIndices = new Int32Array(S);
    this.temperature = new Float32Array(S);
    this.topP = new Float32Array(S);
    this.topK = new Int32Array(S);
    this.minP = new Float32Array(S);
    this.presencePenalty = new Float32Array(S);
    this.frequencyPenalty = new Float32Array(S);
    this.repetitionPenalty = new Float32Array(S);
    this.seeds = new Uint32Array(S);
    this.seedSteps = new Int32Array(S);
    this.numLogprobs = new Int32Array(S);
    this.historyStart = new Int32Array(S + 1);
    this.historyOutputStart = new Int32Array(S);
    this.biasStart = new Int32Array(S + 1);
    this.maskRow = new Int32Array(S);
  }

  /** Runs the step on the native engine. */
  execute(out: SchedulerOutput): Promise<StepResult> {
    if (!this.engine) throw new Error('ModelRunner has no engine (built for batch preparation only)');
    return this.engine.step(this.prepare(out));
  }

  /** Builds the StepBatch for `out`; must run before scheduler.update() (it reads numComputedTokens as of
   *  schedule time). */
  prepare(out: SchedulerOutput): StepBatch {
    const { requests, numNewTokens, sampleRows } = out;
    const S = requests.length;
    const bs = this.bs;
    let stride = 1;
    for (let s = 0; s < S; s++) stride = Math.max(stride, requests[s]!.blockTable.length);
    if (this.blockTables.length < S * stride)
      this.blockTables = new Int32Array(Math.max(S * stride, this.blockTables.length * 2));
    let t = 0;
    let needHistory = false;
    let needBias = false;
    let numMasks = 0;
    this.queryStart[0] = 0;
    for (let s = 0; s < S; s++) {
      const req = requests[s]!;
      const n = numNewTokens[s]!;
      const start = req.numComputedTokens;
      const table = req.blockTable;
      const ids = table.ids;
      const tokens = req.tokens;
      for (let i = 0; i < n; i++, t++) {
        const pos = start + i;
        this.tokenIds[t] = tokens[pos]!;
        this.positions[t] = pos;
        this.slotMapping[t] = ids[(pos / bs) | 0]! * bs + (pos % bs);
      }
      this.queryStart[s + 1] = t;
      this.contextLens[s] = start + n;
      const row = s * stride;
      this.blockTables.set(table.view(), row);
      if (table.length < stride) this.blockTables.fill(-1, row + table.length, row + stride);
      const r = sampleRows[s]!;
      if (r < 0) continue;
      const sp = req.sampling;
      this.sampleIndices[r] = t - 1;
      this.temperature[r] = sp.temperature;
      this.topP[r] = sp.topP;
      this.topK[r] = sp.topK;
      this.minP[r] = sp.minP;
      this.presencePenalty[r] = sp.presencePenalty;
      this.frequencyPenalty[r] = sp.frequencyPenalty;
      this.repetitionPenalty[r] = sp.repetitionPenalty;
      this.seeds[r] = req.seed;
      this.seedSteps[r] = req.numOutputTokens;
      this.numLogprobs[r] = sp.logprobs ?? -1;
      needHistory ||= req.hasPenalties;
      needBias ||= req.logitBiasTokens.length > 0 || req.masksStops || req.badWords.length > 0;
      if (req.mask) numMasks++;
    }
    const R = out.numSamples;
    const batch: StepBatch = {
      tokenIds: this.tokenIds.subarray(0, t),
      positions: this.positions.subarray(0, t),
      queryStart: this.queryStart.subarray(0, S + 1),
      contextLens: this.contextLens.subarray(0, S),
      blockTables: this.blockTables.subarray(0, S * stride),
      maxBlocksPerSeq: stride,
      slotMapping: this.slotMapping.subarray(0, t),
      sampleIndices: this.sampleIndices.subarray(0, R),
      temperature: this.temperature.subarray(0, R),
      topP: this.topP.subarray(0, R),
      topK: this.topK.subarray(0, R),
      minP: this.minP.subarray(0, R),
      presencePenalty: this.presencePenalty.subarray(0, R),
      frequencyPenalty: this.frequencyPenalty.subarray(0, R),
      repetitionPenalty: this.repetitionPenalty.subarray(0, R),
      seeds: this.seeds.subarray(0, R),
      seedSteps: this.seedSteps.subarray(0, R),
      numLogprobs: this.numLogprobs.subarray(0, R),
    };
    if (needHistory) this.addHistory(out, batch);
    if (needBias) this.addBias(out, batch);
    if (numMasks > 0) this.addMasks(out, batch, numMasks);
    return batch;
  }

  /** The allowed-token bitmasks (allowed_token_ids, structured outputs' grammar) of the rows that have one,
   *  packed one after another; rows without one get -1. Unconstrained batches never get here. */
  private addMasks(out: SchedulerOutput, batch: StepBatch, numMasks: number): void {
    let words = 0;
    forEachSampled(out, (req) => {
      if (req.mask) words = req.mask.length;
    });
    if (this.masks.length < numMasks * words)
      this.masks = new Int32Array(Math.max(numMasks * words, this.masks.length * 2));
    let m = 0;
    forEachSampled(out, (req, r) => {
      if (!req.mask) {
        this.maskRow[r] = -1;
        return;
      }
      this.masks.set(req.mask, m * words);
      this.maskRow[r] = m++;
    });
    batch.maskRow = this.maskRow.subarray(0, out.numSamples);
    batch.masks = this.masks.subarray(0, numMasks * words);
  }

  /** Penalty history per sampled row: prompt + output when repetition penalty is on (HF semantics cover
   *  the prompt), the output alone for presence/frequency (OpenAI semantics), nothing for rows without. */
  private addHistory(out: SchedulerOutput, batch: StepBatch): void {
    let total = 0;
    forEachSampled(out, (req) => {
      if (req.hasPenalties) total += req.sampling.repetitionPenalty !== 1 ? req.numTokens : req.numOutputTokens;
    });
    if (this.historyTokens.length < total)
      this.historyTokens = new Int32Array(Math.max(total, this.historyTokens.length * 2));
    let h = 0;
    forEachSampled(out, (req, r) => {
      this.historyStart[r] = h;
      this.historyOutputStart[r] = 0;
      if (req.hasPenalties) {
        const from = req.sampling.repetitionPenalty !== 1 ? 0 : req.numPromptTokens;
        for (let i = from; i < req.numTokens; i++) this.historyTokens[h++] = req.tokens[i]!;
        this.historyOutputStart[r] = req.numPromptTokens - from;
      }
    });
    const R = out.numSamples;
    this.historyStart[R] = h;
    batch.historyStart = this.historyStart.subarray(0, R + 1);
    batch.historyOutputStart = this.historyOutputStart.subarray(0, R);
    batch.historyTokens = this.historyTokens.subarray(0, h);
  }

  /** Logit bias per sampled row: the request's fixed bias (logit_bias), plus -inf on its EOS / stop ids while min_tokens is not reached and on what its bad words ban after this output. */
  private addBias(out: SchedulerOutput, batch: StepBatch): void {
    let total = 0;
    const bans: number[][] = [];
    forEachSampled(out, (req, r) => {
      bans[r] = req.badWords.length > 0 ? bannedNext(req.badWords, req.tokens, req.numPromptTokens) : NO_BANS;
      total += req.logitBiasTokens.length + (req.masksStops ? req.stopIds.size : 0) + bans[r]!.length;
    });
    if (this.biasTokens.length < total) {
      this.biasTokens = new Int32Array(Math.max(total, this.biasTokens.length * 2));
      this.biasValues = new Float32Array(this.biasTokens.length);
    }
    let k = 0;
    forEachSampled(out, (req, r) => {
      this.biasStart[r] = k;
      this.biasTokens.set(req.logitBiasTokens, k);
      this.biasValues.set(req.logitBiasValues, k);
      k += req.logitBiasTokens.length;
      if (req.masksStops) {
        for (const id of req.stopIds) {
          this.biasTokens[k] = id;
          this.biasValues[k++] = -Infinity;
        }
      }
      for (const id of bans[r]!) {
        this.biasTokens[k] = id;
        this.biasValues[k++] = -Infinity;
      }
    });
    const R = out.numSamples;
    this.biasStart[R] = k;
    batch.biasStart = this.biasStart.subarray(0, R + 1);
    batch.biasTokens = this.biasTokens.subarray(0, k);
    batch.biasValues = this.biasValues.subarray(0, k);
  }
}

function forEachSampled(
  out: SchedulerOutput,
  fn: (req: SchedulerOutput['requests'][number], row: number) => void,
): void {
  for (let s = 0; s < out.requests.length; s++) {
    const r = out.sampleRows[s]!;
    if (r >= 0) fn(out.requests[s]!, r);
  }
}
