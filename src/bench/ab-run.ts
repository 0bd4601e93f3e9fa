// `--base-url A --base-url B`: the same prompts to two servers in one run, so that machine noise (other
// processes, thermal state, the client's own event loop) falls on both alike. Arrival slot i carries the pair
// (A_i, B_i): both are due at the same offset and queue for the one --max-concurrency limit, A_i first in
// even pairs and B_i first in odd ones, so at concurrency 1 the servers alternate, A B B A A B…, each is first
// in half the pairs, and at higher limits each pair starts together. Each server's requests become a run's metrics of their own; the ratios B / A come with a
// paired bootstrap confidence interval (ab-bootstrap.ts).
import { arrivalOffsets, ProgressBar, Semaphore } from './benchmark.js';
import { streamRequest, type EndpointConfig } from './stream-request.js';
import type { BenchRequest, RequestOutput } from './types.js';

export interface AbRunOptions {
  endpoints: [EndpointConfig, EndpointConfig];
  requests: BenchRequest[];
  requestRate: number;
  burstiness: number;
  maxConcurrency: number | undefined;
  seed: number;
}

export interface AbRunResult {
  /** outputs[0] from A, outputs[1] from B, each in dataset order */
  outputs: [RequestOutput[], RequestOutput[]];
  /** which server each request was sent to, in the order they were sent (0 = A, 1 = B) */
  sendOrder: number[];
  durationS: number;
}

export async function runAb(o: AbRunOptions): Promise<AbRunResult> {
  const n = o.requests.length;
  const offsets = arrivalOffsets(n, o.requestRate, o.burstiness, o.seed);
  const limit = new Semaphore(o.maxConcurrency ?? Number.POSITIVE_INFINITY);
  const progress = ProgressBar.create(2 * n, 'A/B');
  const outputs: [RequestOutput[], RequestOutput[]] = [new Array(n), new Array(n)];
  const sendOrder: number[] = [];
  const pending: Array<Promise<void>> = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const wait = start + offsets[i]! * 1000 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    // Counterbalanced: A first in even pairs, B first in odd ones (A B B A A B …), so neither server is always
    // the one that follows the other (an A/A run of one server showed the second of each pair ~9 % faster).
    for (const side of i % 2 === 0 ? ([0, 1] as const) : ([1, 0] as const)) {
      pending.push(
        limit
          .run(() => {
            sendOrder.push(side);
            return streamRequest(o.endpoints[side], o.requests[i]!, start);
          })
          .then((out) => {
            outputs[side][i] = out;
            progress.tick(!out.success);
          }),
      );
    }
  }
  await Promise.all(pending);
  const durationS = (performance.now() - start) / 1000;
  progress.finish();
  return { outputs, sendOrder, durationS };
}
