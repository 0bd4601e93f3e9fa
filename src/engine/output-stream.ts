// One request's outputs as an async iterator (single consumer). The engine pushes as steps complete; the
// consumer pulls at its own pace. Outputs the consumer has not taken yet are merged into one delta, so a
// slow consumer gets fewer, larger outputs instead of an ever-growing queue. Ending the iteration early
// (break, return()) cancels the request through onCancel.
import type { RequestOutput } from './types.js';

export class OutputStream implements AsyncIterable<RequestOutput>, AsyncIterator<RequestOutput> {
  private readonly queue: RequestOutput[] = [];
  private waiter: ((r: IteratorResult<RequestOutput>) => void) | undefined;
  private ended = false; // the final output was pushed
  private done = false; // the consumer cancelled

  constructor(private readonly onCancel: () => void) {}

  push(out: RequestOutput): void {
    if (this.ended) return;
    this.ended = out.finished;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: out, done: false });
      return;
    }
    const last = this.queue[this.queue.length - 1];
    if (last) this.queue[this.queue.length - 1] = merge(last, out);
    else this.queue.push(out);
  }

  next(): Promise<IteratorResult<RequestOutput>> {
    const out = this.queue.shift();
    if (out) return Promise.resolve({ value: out, done: false });
    // With the queue empty, an ended stream has handed out its final output already.
    if (this.done || this.ended) return Promise.resolve(DONE);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  return(): Promise<IteratorResult<RequestOutput>> {
    this.done = true;
    this.queue.length = 0;
    if (!this.ended) this.onCancel();
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): AsyncIterator<RequestOutput> {
    return this;
  }
}

const DONE: IteratorResult<RequestOutput> = { value: undefined, done: true };

/** a then b as one output: b's counters and ending, both deltas' tokens. */
function merge(a: RequestOutput, b: RequestOutput): RequestOutput {
  const merged: RequestOutput = { ...b, newTokenIds: a.newTokenIds.concat(b.newTokenIds) };
  if (a.logprobs || b.logprobs) merged.logprobs = (a.logprobs ?? []).concat(b.logprobs ?? []);
  if (a.queueTimeMs !== undefined) merged.queueTimeMs = a.queueTimeMs;
  return merged;
}
