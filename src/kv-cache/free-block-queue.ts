// The free blocks in eviction order: head = evicted (reused) first, tail = most recently freed. A doubly
// linked list over Int32Arrays so that a prefix-cache hit can pull a cached free block out of the middle in
// O(1) (vLLM v1's FreeKVCacheBlockQueue). Index `numBlocks` is the sentinel: next[sentinel] is the head,
// prev[sentinel] the tail. A block is in the queue iff inQueue[block] === 1.

export class FreeBlockQueue {
  private readonly next: Int32Array; // [numBlocks + 1]
  private readonly prev: Int32Array; // [numBlocks + 1]
  private readonly inQueue: Uint8Array; // [numBlocks]
  private readonly sentinel: number;
  size = 0;

  /** Starts with every block free, in id order. */
  constructor(numBlocks: number) {
    this.sentinel = numBlocks;
    this.next = new Int32Array(numBlocks + 1);
    this.prev = new Int32Array(numBlocks + 1);
    this.inQueue = new Uint8Array(numBlocks);
    this.next[this.sentinel] = this.sentinel;
    this.prev[this.sentinel] = this.sentinel;
    for (let b = 0; b < numBlocks; b++) this.pushTail(b);
  }

  /** The block evicted next, or -1 when empty. */
  peekHead(): number {
    const h = this.next[this.sentinel]!;
    return h === this.sentinel ? -1 : h;
  }

  popHead(): number {
    const h = this.peekHead();
    if (h < 0) throw new Error('free block queue is empty');
    this.remove(h);
    return h;
  }

  pushTail(block: number): void {
    if (this.inQueue[block]) throw new Error(`block ${block} is already free`);
    const tail = this.prev[this.sentinel]!;
    this.next[tail] = block;
    this.prev[block] = tail;
    this.next[block] = this.sentinel;
    this.prev[this.sentinel] = block;
    this.inQueue[block] = 1;
    this.size++;
  }

  remove(block: number): void {
    if (!this.inQueue[block]) throw new Error(`block ${block} is not free`);
    const p = this.prev[block]!;
    const n = this.next[block]!;
    this.next[p] = n;
    this.prev[n] = p;
    this.inQueue[block] = 0;
    this.size--;
  }

  /** Free blocks head to tail (tests and debugging). */
  toArray(): number[] {
    const out: number[] = [];
    for (let b = this.next[this.sentinel]!; b !== this.sentinel; b = this.next[b]!) out.push(b);
    return out;
  }
}
