// The waiting line: a binary min-heap in compareRequests order (priority, then arrival). A preempted
// request keeps its arrivalSeq, so it goes back ahead of everything that arrived after it, as in vLLM.
// push/pop are O(log n); remove (abort of a waiting request) is O(n), which is rare.
import { compareRequests, type Request } from './request.js';

export class RequestQueue {
  private readonly heap: Request[] = [];

  get length(): number {
    return this.heap.length;
  }

  peek(): Request | undefined {
    return this.heap[0];
  }

  push(req: Request): void {
    const h = this.heap;
    h.push(req);
    this.siftUp(h.length - 1);
  }

  pop(): Request | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  /** Removes a request anywhere in the line; false if it is not there. */
  remove(req: Request): boolean {
    const h = this.heap;
    const i = h.indexOf(req);
    if (i < 0) return false;
    const last = h.pop()!;
    if (i < h.length) {
      h[i] = last;
      this.siftDown(i);
      this.siftUp(i);
    }
    return true;
  }

  /** The requests in no particular order (stats, tests). */
  values(): readonly Request[] {
    return this.heap;
  }

  private siftUp(i: number): void {
    const h = this.heap;
    const x = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (compareRequests(h[p]!, x) <= 0) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = x;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    const n = h.length;
    const x = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && compareRequests(h[c + 1]!, h[c]!) < 0) c++;
      if (compareRequests(h[c]!, x) >= 0) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = x;
  }
}
