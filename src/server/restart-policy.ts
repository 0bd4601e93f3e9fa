// When to load an engine again after it failed: after a backoff that doubles with each failure in a row
// (capped), until too many in a row say that restarting in this process does not help. An engine that served
// for a while without a fault ends the run.
const MAX_BACKOFF_MS = 60_000;
/** An engine that served this long without a fault ends a run of failures. */
const RUN_RESET_MS = 60_000;

export class RestartPolicy {
  /** Failures in a row (engine faults, and restarts whose load failed). */
  private run = 0;
  private servingSince = Date.now();

  constructor(
    private readonly backoffMs: number,
    readonly maxRestarts: number,
  ) {}

  /** An engine serves from now on. */
  serving(): void {
    this.servingSince = Date.now();
  }

  /** The engine that served failed: a run of failures begins unless it served long enough. */
  engineFailed(): void {
    if (Date.now() - this.servingSince > RUN_RESET_MS) this.run = 0;
  }

  /** The delay a failure now would bring before the next restart (for Retry-After). */
  get nextDelayMs(): number {
    return Math.min(MAX_BACKOFF_MS, this.backoffMs * 2 ** this.run);
  }

  /** One more failure in a row: the delay before the next restart, or undefined once they are exhausted. */
  failure(): number | undefined {
    const delay = this.nextDelayMs;
    this.run++;
    return this.exhausted ? undefined : delay;
  }

  get exhausted(): boolean {
    return this.run > this.maxRestarts;
  }
}
