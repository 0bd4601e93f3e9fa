// One request's block table: physical block ids in logical order. It only grows while the request holds
// blocks (vLLM v1's rule: a block table is never rewritten), and is emptied as a whole when the request
// frees its blocks (finish, abort, preemption). Kept as an Int32Array so the model runner copies a row into
// the step's blockTables with one TypedArray.set (a memcpy), not an element loop.

export class BlockTable {
  /** ids[0, length) are the blocks; the rest is spare capacity. */
  ids: Int32Array;
  length = 0;

  constructor(initialCapacity = 8) {
    this.ids = new Int32Array(Math.max(1, initialCapacity));
  }

  push(blockId: number): void {
    if (this.length === this.ids.length) {
      const grown = new Int32Array(this.ids.length * 2);
      grown.set(this.ids);
      this.ids = grown;
    }
    this.ids[this.length++] = blockId;
  }

  /** The blocks as a view (no copy); valid until the next push. */
  view(): Int32Array {
    return this.ids.subarray(0, this.length);
  }

  clear(): void {
    this.length = 0;
  }
}
