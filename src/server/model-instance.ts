// One loaded copy of a served model: its engine and tokenizer threads, and the requests that use it. A name's
// instance changes when the admin API switches it or the server restarts a failed engine; the old instance
// keeps serving the requests that hold it (their leases) and is freed once they are done, or cut when a grace
// period runs out. Requests hold it from the moment their route picks it until their reply closes, so an
// instance is never freed under a request that is still tokenizing its prompt.
import type { ApiError } from './errors.js';
import type { Generation } from './generation.js';
import type { LoadedModel } from './model-slot.js';

/** Cuts are answered within this once the grace is over (an SSE error event, or a 503). */
const CUT_ANSWER_MS = 5_000;

export class ModelInstance {
  /** Generations running on it (startGeneration registers them until their reply closes). */
  readonly generations = new Set<Generation>();
  private leases = 0;
  private readonly idleWaiters = new Set<() => void>();
  private cutError: ApiError | undefined;
  private engineClosing: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /** Its gpu-memory-utilization of its own: what it holds of the GPU while it lives (model-registry.ts). */
  gpuShare = 0;

  constructor(
    readonly model: LoadedModel,
    /** What it serves, as the admin API shows it: the model folder, Hub id or engine folder. */
    readonly source: string,
  ) {}

  get numLeases(): number {
    return this.leases;
  }

  /** Takes a lease; the function returned gives it back (once, however often it is called). */
  lease(): () => void {
    this.leases++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.leases--;
      if (this.leases === 0) for (const w of [...this.idleWaiters]) w();
    };
  }

  /** Throws for work that would start on it now, once it was cut. */
  check(): void {
    if (this.cutError) throw this.cutError;
  }

  /** Every generation on it ends with `err` (a 503 or an SSE error event), and any that would start too. */
  cut(err: ApiError): void {
    this.cutError ??= err;
    for (const g of this.generations) g.cut(this.cutError);
  }

  /**
   * Out of service: waits until no request holds it, or `graceMs`, then cuts what is left with `cutError`
   * and gives those answers a moment to be written; then frees it.
   */
  async retire(graceMs: number, cutError: () => ApiError): Promise<void> {
    if (!(await this.idleWithin(graceMs))) {
      this.cut(cutError());
      await this.idleWithin(CUT_ANSWER_MS);
    }
    await this.close();
  }

  /** The engine failed: its requests end now with `err`, its engine is freed at once (the memory a restart
   *  needs), the tokenizer threads once the requests that hold them are gone. */
  async fail(err: ApiError): Promise<void> {
    this.cut(err);
    await this.closeEngine();
    await this.idleWithin(CUT_ANSWER_MS);
    await this.close();
  }

  /** Frees the engine, then the tokenizer threads; a model the caller owns (no `release`) is left alone. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.closeEngine();
      await this.model.release?.threads();
    })();
    return this.closing;
  }

  private closeEngine(): Promise<void> {
    this.engineClosing ??= this.model.release?.engine() ?? Promise.resolve();
    return this.engineClosing;
  }

  /** Whether no request holds it any more within `ms`. */
  private idleWithin(ms: number): Promise<boolean> {
    if (this.leases === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        this.idleWaiters.delete(waiter);
        resolve(idle);
      };
      const waiter = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.idleWaiters.add(waiter);
    });
  }
}
