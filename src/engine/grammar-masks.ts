// Structured outputs in the engine loop: every constrained request's mask must describe the tokens its grammar
// allows after the output so far before the step that samples its next token. A sampled token is accepted at
// once (synchronously, in the step's update); the masks of the requests that moved are then computed together,
// between the step's result and the launch of the next one (the only work on that path that unconstrained
// batches never do). Pure bookkeeping over Request and TokenConstraint: no I/O, no scheduler.
import type { Request } from '../scheduler/request.js';

export interface MaskRefresh {
  /** Requests whose grammar is complete: nothing but a stop token may follow. */
  complete: Request[];
  /** Requests whose grammar failed to produce a mask (its message). */
  failed: Array<{ req: Request; message: string }>;
}

export class GrammarMasks {
  /** Constrained requests whose mask does not yet follow their last token (or that have none yet). */
  private readonly stale = new Set<Request>();
  private refreshing = false;
  /** Constraints released while a refresh was computing with them: disposed once it is done. */
  private readonly released: Request[] = [];

  constructor(private readonly stopIds: ReadonlySet<number>) {}

  /** A mask refresh is due before the next launch. */
  get due(): boolean {
    return this.stale.size > 0;
  }

  /** A new constrained request: its first mask is computed before it can be scheduled to sample. */
  add(req: Request): void {
    this.stale.add(req);
  }

  /**
   * The token `req` sampled. Returns 'rejected' when its grammar does not accept it (the request must fail),
   * 'terminated' when the grammar took a stop token (the request ends), else 'ok' (its mask is now stale).
   */
  accept(req: Request, token: number): 'ok' | 'rejected' | 'terminated' {
    const c = req.constraint!;
    if (!c.accept(token)) return 'rejected';
    if (c.isTerminated()) return 'terminated';
    this.stale.add(req);
    return 'ok';
  }

  /** Computes the stale masks (those of requests still unfinished) and hands them to their requests. */
  async refresh(): Promise<MaskRefresh> {
    const reqs = [...this.stale].filter((r) => r.status !== 'finished');
    this.stale.clear();
    this.refreshing = true;
    let masks: PromiseSettledResult<Int32Array>[];
    try {
      masks = await Promise.allSettled(reqs.map((r) => r.constraint!.nextMask()));
    } finally {
      this.refreshing = false;
      for (const req of this.released.splice(0)) req.constraint!.dispose();
    }
    const out: MaskRefresh = { complete: [], failed: [] };
    reqs.forEach((req, i) => {
      const m = masks[i]!;
      if (req.status === 'finished') return; // ended while the masks were computed
      if (m.status === 'rejected') {
        const why = m.reason instanceof Error ? m.reason.message : String(m.reason);
        out.failed.push({ req, message: `the grammar could not compute the next tokens: ${why}` });
        return;
      }
      req.setGrammarMask(m.value);
      if (onlyStops(m.value, this.stopIds)) out.complete.push(req);
    });
    return out;
  }

  /** A constrained request ended: its grammar state is freed (after the refresh in flight, if any). */
  release(req: Request): void {
    if (!req.constraint) return;
    this.stale.delete(req);
    if (this.refreshing) this.released.push(req);
    else req.constraint.dispose();
  }
}

/** True when the mask allows no token but stop tokens (an empty mask counts: nothing can follow). */
export function onlyStops(mask: Int32Array, stopIds: ReadonlySet<number>): boolean {
  for (let w = 0; w < mask.length; w++) {
    let bits = mask[w]!;
    while (bits !== 0) {
      const b = 31 - Math.clz32(bits & -bits);
      if (!stopIds.has(w * 32 + b)) return false;
      bits &= bits - 1;
    }
  }
  return true;
}
