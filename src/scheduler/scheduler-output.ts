// What one schedule() decides: which requests run this step, how many new tokens each computes, and which
// of them sample a token. The model runner turns it into one StepBatch; update() applies the step's result.
import type { Request } from './request.js';

export interface SchedulerOutput {
  /** Batch order: sequence s of the step is requests[s]. */
  readonly requests: Request[];
  /** [S] new tokens of requests[s]: tokens[numComputedTokens, numComputedTokens + numNewTokens[s]) as of
   *  schedule time (the step computes them; update() advances numComputedTokens). */
  readonly numNewTokens: number[];
  /** [S] row of requests[s] among the step's sampled rows, or -1 when its prompt is not done yet (a
   *  prefill chunk that is not the last). Rows are numbered in batch order. */
  readonly sampleRows: number[];
  /** T: sum of numNewTokens. */
  readonly numTokens: number;
  /** R: sampled rows. */
  readonly numSamples: number;
  /** Requests preempted while scheduling this step (they are waiting again, with no blocks). */
  readonly preempted: Request[];
}
