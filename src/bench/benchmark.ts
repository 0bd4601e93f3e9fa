// One benchmark run: optional warm-up, then every request sent at its arrival time (Poisson or all at once),
// at most --max-concurrency in flight, each streamed and timed. As in vLLM a request that arrives while the
// limit is reached waits, and its clock starts when it is actually sent. The run's duration is from the start
// of the schedule to the end of the last request. Below the run: its three parts, the arrival schedule, the
// concurrency cap and the progress bar.
import { Rng } from './rng.js';
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
export async function warmUp(
  endpoint: EndpointConfig,
  requests: BenchRequest[],
  count: number,
  maxConcurrency: number | undefined,
): Promise<void> {
  if (count <= 0 || requests.length === 0) return;
  const limit = new Semaphore(maxConcurrency ?? Number.POSITIVE_INFINITY);
  const t0 = performance.now();
  const outs = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      limit.run(() => streamRequest(endpoint, requests[i % requests.length]!, t0)),
    ),
  );
  const firstFailure = outs.find((o) => !o.success);
  if (outs.every((o) => !o.success)) {
    const error = firstFailure!.error;
    // A request too long for the model is the commonest first failure; it is fixed by the length flags.
    const hint = /context length|too long|max_model_len/i.test(error)
      ? 'lower --input-len (or --input-lens) and --output-len: the prompt, its BOS and the output must fit the context'
      : 'check --base-url, --endpoint, --model and --api-key';
    throw new Error(`warm-up failed: ${error} (${hint})`);
  }
}

async function sleepUntil(deadlineMs: number): Promise<void> {
  const wait = deadlineMs - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

// When each request is sent, as offsets from the benchmark's start. vLLM sends the first request at once and
// then waits Gamma(burstiness, 1/(rate·burstiness)) between requests: burstiness 1 is a Poisson process
// (exponential gaps, mean 1/rate); smaller is burstier, larger is more regular. rate = Infinity sends all at 0.
// Offsets are absolute so that timer lateness on a busy machine does not accumulate over a long run.
export function arrivalOffsets(n: number, requestRate: number, burstiness: number, seed: number): number[] {
  if (!(requestRate > 0)) throw new Error(`--request-rate must be > 0 or inf, got ${requestRate}`);
  if (!(burstiness > 0)) throw new Error(`--burstiness must be > 0, got ${burstiness}`);
  const offsets = new Array<number>(n).fill(0);
  if (requestRate === Number.POSITIVE_INFINITY) return offsets;
  // A stream apart from the dataset's, so that changing the rate never changes the prompts.
  const rng = new Rng((seed ^ 0x5bd1e995) >>> 0);
  const scale = 1 / (requestRate * burstiness);
  for (let i = 1; i < n; i++) {
    const gap = burstiness === 1 ? rng.exponential(scale) : rng.gamma(burstiness, scale);
    offsets[i] = offsets[i - 1]! + gap;
  }
  return offsets;
}

// A counting semaphore with FIFO hand-off: --max-concurrency caps requests in flight, and waiting requests
// are sent in arrival order. Invariant: inFlight ≤ limit; a release hands the slot straight to the oldest
// waiter, so inFlight does not dip and refill between them.
export class Semaphore {
  private inFlight = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly limit: number) {
    if (!(limit >= 1)) throw new Error(`concurrency limit must be ≥ 1, got ${limit}`);
  }

  async acquire(): Promise<void> {
    if (this.inFlight < this.limit) {
      this.inFlight++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.inFlight--;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

// A one-line progress bar on stderr, drawn only when stderr is a terminal so that logs and pipes stay clean.
// Redraws are throttled (at most every 100 ms, plus the final one) to keep the client's own cost negligible.
export interface ProgressSink {
  tick(failed: boolean): void;
  finish(): void;
}

export class ProgressBar implements ProgressSink {
  private done = 0;
  private failed = 0;
  private lastDraw = 0;
  private readonly start = performance.now();

  private constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream,
  ) {}

  /** A bar on `stream` when it is a TTY, else a sink that draws nothing. */
  static create(total: number, label: string, stream: NodeJS.WriteStream = process.stderr): ProgressSink {
    if (!stream.isTTY) return { tick() {}, finish() {} };
    return new ProgressBar(total, label, stream);
  }

  tick(failed: boolean): void {
    this.done++;
    if (failed) this.failed++;
    const now = performance.now();
    if (now - this.lastDraw >= 100 || this.done === this.total) {
      this.lastDraw = now;
      this.draw(now);
    }
  }

  finish(): void {
    this.draw(performance.now());
    this.stream.write('\n');
  }

  private draw(now: number): void {
    const width = 30;
    const frac = this.total === 0 ? 1 : this.done / this.total;
    const filled = Math.round(frac * width);
    const elapsed = (now - this.start) / 1000;
    const failed = this.failed ? ` ${this.failed} failed` : '';
    const line = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.done}/${this.total}${failed} ${elapsed.toFixed(1)}s`;
    this.stream.write(`\r${line}\x1b[K`);
  }
}
