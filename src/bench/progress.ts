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
