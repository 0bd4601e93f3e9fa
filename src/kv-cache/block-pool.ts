// The fixed pool of KV blocks and who holds them. Owns: refcounts, the free list in eviction order, and the
// prefix cache (chained block hash → block). The native side owns the memory; this is the only place that
// knows which block holds what.
//
// Invariants:
// - refCount[b] >= 0; b is in the free queue iff refCount[b] === 0.
// - A cached block (hashOf[b] >= 0) holds the KV of tokens[b*blockSize, (b+1)*blockSize) following the
//   prefix that ends with block parentOf[b] (-1: none) as it was in generation parentGenOf[b]. It stays
//   cached while free, until evicted (taken from the queue head for new content).
// - generation[b] counts how often b was handed out for new content. A lookup accepts block c after block
//   m only if parentOf[c] === m and parentGenOf[c] === generation[m]: if m was reused since c was computed,
//   c's KV belongs to a prefix that no longer exists and c is not a hit, whatever its hash says. With the
//   token comparison this makes hits exact by induction over the chain; the hash only finds candidates.
// - cache.get(h) === b implies hashOf[b] === h.
import { FreeBlockQueue } from './free-block-queue.js';
import type { BlockTable } from './block-table.js';

export class BlockPool {
  readonly refCount: Int32Array; // [numBlocks]
  private readonly hashOf: Float64Array; // [numBlocks] -1 = not cached
  private readonly parentOf: Int32Array; // [numBlocks]
  private readonly parentGenOf: Int32Array; // [numBlocks]
  private readonly generation: Int32Array; // [numBlocks]
  private readonly tokens: Int32Array; // [numBlocks * blockSize] content of cached blocks
  private readonly cache = new Map<number, number>();
  private readonly free: FreeBlockQueue;

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1)
      throw new Error(`numBlocks must be a positive integer, got ${numBlocks}`);
    this.refCount = new Int32Array(numBlocks);
    this.hashOf = new Float64Array(numBlocks).fill(-1);
    this.parentOf = new Int32Array(numBlocks).fill(-1);
    this.parentGenOf = new Int32Array(numBlocks);
    this.generation = new Int32Array(numBlocks);
    this.tokens = new Int32Array(numBlocks * blockSize);
    this.free = new FreeBlockQueue(numBlocks);
  }

  /** Blocks that can be handed out now (free, cached or not). */
  get numFree(): number {
    return this.free.size;
  }

  get numCached(): number {
    return this.cache.size;
  }

  /** Appends n fresh blocks (refcount 1) to `table`, evicting cached free blocks from the queue head.
   *  The caller checks numFree first; running out here is a bug. */
  allocate(n: number, table: BlockTable): void {
    if (n > this.free.size) throw new Error(`allocate(${n}) with only ${this.free.size} free blocks`);
    for (let i = 0; i < n; i++) {
      const b = this.free.popHead();
      if (this.hashOf[b]! >= 0) this.evict(b);
      this.generation[b]!++;
      this.refCount[b] = 1;
      table.push(b);
    }
  }

  /** The cached block with this hash whose content is exactly tokens[start, start+blockSize) after the
   *  prefix ending in `parent`, or -1. */
  lookup(hash: number, parent: number, tokens: ArrayLike<number>, start: number): number {
    const b = this.cache.get(hash);
    if (b === undefined || this.parentOf[b] !== parent) return -1;
    if (parent >= 0 && this.parentGenOf[b] !== this.generation[parent]) return -1;
    const base = b * this.blockSize;
    for (let i = 0; i < this.blockSize; i++) if (this.tokens[base + i] !== tokens[start + i]) return -1;
    return b;
  }

  /** Takes one more reference on a block found by lookup (pulling it off the free list if it was free). */
  touch(b: number): void {
    if (this.refCount[b] === 0) this.free.remove(b);
    this.refCount[b]!++;
  }

  /** Drops one reference to each block, last block first: a request's tail blocks are the least likely to
   *  be shared, so they are evicted before its head blocks. */
  release(table: BlockTable): void {
    const ids = table.ids;
    for (let i = table.length - 1; i >= 0; i--) {
      const b = ids[i]!;
      const rc = --this.refCount[b]!;
      if (rc === 0) this.free.pushTail(b);
      else if (rc < 0) throw new Error(`block ${b} freed twice`);
    }
    table.clear();
  }

  /** Registers a full, computed block under `hash`. A block already cached, or a hash already taken by an
   *  identical block computed by another request, is left as it is. So is a block whose parent is not
   *  cached (it lost that race): lookups only walk cached blocks, so it could never be hit, and it would
   *  keep the same content computed behind the cached parent from being registered. */
  cacheBlock(b: number, hash: number, parent: number, tokens: ArrayLike<number>, start: number): void {
    if (this.hashOf[b]! >= 0 || this.cache.has(hash)) return;
    if (parent >= 0 && this.hashOf[parent]! < 0) return;
    this.hashOf[b] = hash;
    this.parentOf[b] = parent;
    this.parentGenOf[b] = parent >= 0 ? this.generation[parent]! : 0;
    const base = b * this.blockSize;
    for (let i = 0; i < this.blockSize; i++) this.tokens[base + i] = tokens[start + i]!;
    this.cache.set(hash, b);
  }

  isCached(b: number): boolean {
    return this.hashOf[b]! >= 0;
  }

  /** Free blocks head (next evicted) to tail. */
  freeBlocks(): number[] {
    return this.free.toArray();
  }

  private evict(b: number): void {
    const h = this.hashOf[b]!;
    if (this.cache.get(h) === b) this.cache.delete(h);
    this.hashOf[b] = -1;
    this.parentOf[b] = -1;
  }
}
