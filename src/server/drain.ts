// Draining on SIGTERM: the server keeps listening so that clients get an answer instead of a refused
// connection. /health answers 503 (a load balancer stops sending), every new request gets a 503 with
// Retry-After and `Connection: close`, and in-flight requests run on until the drain timeout; then what is
// left is cut, each with an error the client can see (an SSE error event, or a 503), never a 200 that
// pretends the text is complete.
import { ApiError } from './errors.js';
import type { Generation } from './generation.js';

export class Drain {
  private deadline: number | undefined;
  private cutError: ApiError | undefined;
  /** Generations in flight (registered by startGeneration until their reply closes). */
  readonly generations = new Set<Generation>();

  get draining(): boolean {
    return this.deadline !== undefined;
  }

  start(graceMs: number): void {
    this.deadline ??= Date.now() + graceMs;
  }

  /** Seconds until the drain ends (at least 1): when a client may try this address again. */
  retryAfter(): number {
    return Math.max(1, Math.ceil(((this.deadline ?? Date.now()) - Date.now()) / 1000));
  }

  /** What a request arriving while draining gets. */
  refusal(): ApiError {
    return new ApiError(
      'server_shutting_down',
      'the server is shutting down and takes no new requests; retry on another instance',
      null,
      this.retryAfter(),
    );
  }

  /** Throws for work that would start now: refused while draining, or cut once the drain timed out. */
  check(): void {
    if (this.cutError) throw this.cutError;
  }

  /** The drain timed out: every generation still running fails, and any that would start fails too. */
  cutAll(): void {
    this.cutError ??= new ApiError(
      'server_shutting_down',
      'the server shut down before this request finished; retry it',
      null,
      1,
    );
    for (const g of this.generations) g.cut(this.cutError);
  }
}
