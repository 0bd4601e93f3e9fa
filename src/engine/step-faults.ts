// A step's faults, pinned on the requests they belong to, so that one request's bad value or broken numbers
// end that request alone. Two kinds come back from the native side:
//   - the batch check refused some sequences before anything ran (a rejected step with `faults`): those
//     requests fail, and the same step runs again without them (nothing of it was applied yet);
//   - the sampler could not sample some rows (`rowFaults` of a step that ran): those requests fail, the
//     others take their tokens as usual.
// A fault the native side cannot pin on a sequence still fails the whole step's requests (engine-loop.ts).
import { ROW_FAULT_NON_FINITE_LOGITS, type StepError, type StepResult } from '../runner/binding.js';
import type { Request } from '../scheduler/request.js';
import type { SchedulerOutput } from '../scheduler/scheduler-output.js';

/** Requests of `out` to fail, with the message their client gets. */
export type RequestFaults = Array<{ req: Request; message: string }>;

/** The requests a rejected step pins its fault on, or undefined when it pins none (the step fails whole). */
export function refusedRequests(out: SchedulerOutput, err: unknown): RequestFaults | undefined {
  const faults = (err as StepError | undefined)?.faults;
  if (!Array.isArray(faults) || faults.length === 0) return undefined;
  const found: RequestFaults = [];
  for (const f of faults) {
    const req = Number.isInteger(f.seq) ? out.requests[f.seq] : undefined;
    if (!req) return undefined; // not a sequence of this step: nothing to pin it on
    found.push({ req, message: `the engine refused this request: ${f.message}` });
  }
  return found;
}

/** The requests whose sampled row of `res` could not be sampled. */
export function faultedRows(out: SchedulerOutput, res: StepResult): RequestFaults {
  const found: RequestFaults = [];
  const faults = res.rowFaults;
  if (!faults) return found;
  out.requests.forEach((req, k) => {
    const row = out.sampleRows[k]!;
    if (row < 0 || faults[row] === 0) return;
    const what =
      faults[row] === ROW_FAULT_NON_FINITE_LOGITS
        ? 'non-finite logits (NaN or infinity)'
        : `an unknown fault (${faults[row]})`;
    found.push({
      req,
      message: `the model produced ${what} for this request at output token ${req.numOutputTokens + 1}`,
    });
  });
  return found;
}

/** `out` without the requests that have finished since it was scheduled (failed or aborted), their sampled
 *  rows renumbered; undefined when none is left. Valid to run only while nothing of `out` was applied. */
export function withoutFinished(out: SchedulerOutput): SchedulerOutput | undefined {
  const requests: Request[] = [];
  const numNewTokens: number[] = [];
  const sampleRows: number[] = [];
  let numTokens = 0;
  let numSamples = 0;
  out.requests.forEach((req, k) => {
    if (req.status !== 'running') return;
    requests.push(req);
    numNewTokens.push(out.numNewTokens[k]!);
    sampleRows.push(out.sampleRows[k]! < 0 ? -1 : numSamples++);
    numTokens += out.numNewTokens[k]!;
  });
  if (requests.length === 0) return undefined;
  return { requests, numNewTokens, sampleRows, numTokens, numSamples, preempted: [] };
}
