// One benchmark run: optional warm-up, then every request sent at its arrival time (Poisson or all at once),
// at most --max-concurrency in flight, each streamed and timed. As in vLLM a request that arrives while the
// limit is reached waits, and its clock starts when it is actually sent. The run's duration is from the start
// of the schedule to the end of the last request.
import { arrivalOffsets } from './arrivals.js';
import { ProgressBar, type ProgressSink } from './progress.js';
import { Semaphore } from './semaphore.js';
import { streamRequest, type EndpointConfig } from './stream-request.js';
import type { BenchRequest, RequestOutput } from './types.js';

export interface RunOptions {
  endpoint: EndpointConfig;
  requests: BenchRequest[];
  /** requests per second; Infinity sends all at once */
  requestRate: number;
  burstiness: number;
  maxConcurrency: number | undefined;
  seed: number;
  /** label of the progress bar; the bar shows only when stderr is a TTY */
  label?: string;
  progress?: ProgressSink;
}

export interface RunResult {
  outputs: RequestOutput[];
  durationS: number;
}

export async function runBenchmark(opts: RunOptions): Promise<RunResult> {
  const n = opts.requests.length;
  const offsets = arrivalOffsets(n, opts.requestRate, opts.burstiness, opts.seed);
  const limit = new Semaphore(opts.maxConcurrency ?? Number.POSITIVE_INFINITY);
  const progress = opts.progress ?? ProgressBar.create(n, opts.label ?? 'bench');
  const outputs = new Array<RequestOutput>(n);
  const pending: Array<Promise<void>> = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    await sleepUntil(start + offsets[i]! * 1000);
    pending.push(
      limit
        .run(() => streamRequest(opts.endpoint, opts.requests[i]!, start))
        .then((o) => {
          outputs[i] = o;
          progress.tick(!o.success);
        }),
    );
  }
  await Promise.all(pending);
  const durationS = (performance.now() - start) / 1000;
  progress.finish();
  return { outputs, durationS };
}

/**
 * Sends `count` requests (cycling through the dataset) before the measured run, at most `maxConcurrency` at a
 * time, to warm connections and server caches. Like vLLM's initial test run it also checks the arguments:
 * if every warm-up request fails, it throws with the first failure's message.
 */
export async function warmUp(endpoint: EndpointConfig, requests: BenchRequest[], count: number, maxConcurrency: number | undefined): Promise<void> {
  if (count <= 0 || requests.length === 0) return;
  const limit = new Semaphore(maxConcurrency ?? Number.POSITIVE_INFINITY);
  const t0 = performance.now();
  const outs = await Promise.all(
    Array.from({ length: count }, (_, i) => limit.run(() => streamRequest(endpoint, requests[i % requests.length]!, t0))),
  );
  const firstFailure = outs.find((o) => !o.success);
  if (outs.every((o) => !o.success)) {
    throw new Error(`warm-up failed: ${firstFailure!.error} (check --base-url, --endpoint, --model and --api-key)`);
  }
}

async function sleepUntil(deadlineMs: number): Promise<void> {
  const wait = deadlineMs - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
