// The narrow facade the scheduler talks to (vLLM v1's KVCacheManager): find a request's cached prefix,
// allocate the slots a step needs, register blocks once computed, free. Pure and synchronous.
import { BlockPool } from './block-pool.js';
import type { BlockTable } from './block-table.js';
import { hashBlock, ROOT_HASH } from './block-hash.js';

/** What the manager needs of a request. The scheduler's Request implements it. */
export interface KvSequence {
  /** Prompt then generated tokens. Only appended to. */
  readonly tokens: number[];
  /** Tokens whose KV is in the cache (or being written by the step in flight). */
  numComputedTokens: number;
  readonly blockTable: BlockTable;
  /** Chained hashes of the sequence's full blocks, extended lazily; valid while tokens only grow. */
  readonly blockHashes: number[];
  /** Leading blocks of blockTable already offered to the prefix cache. */
  numCachedBlocks: number;
}

export interface KvCacheConfig {
  numBlocks: number;
  blockSize: number;
  enablePrefixCaching: boolean;
}

export class KvCacheManager {
  readonly pool: BlockPool;
  readonly blockSize: number;
  readonly enablePrefixCaching: boolean;
  /** Prompt tokens looked up at admission and found cached (cumulative, for metrics). */
  prefixQueries = 0;
  prefixHits = 0;

  constructor(config: KvCacheConfig) {
    this.pool = new BlockPool(config.numBlocks, config.blockSize);
    this.blockSize = config.blockSize;
    this.enablePrefixCaching = config.enablePrefixCaching;
  }

  get numBlocks(): number {
    return this.pool.numBlocks;
  }

  /** Fraction of blocks held by requests (free cached blocks count as free: they can be evicted). */
  get usage(): number {
    return 1 - this.pool.numFree / this.pool.numBlocks;
  }

  /** Blocks needed to hold n tokens. */
  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /**
   * The longest run of cached full blocks at the start of a sequence that holds no blocks yet, written to
   * `out` (not yet referenced: pass them to allocateSlots). At least the last token is left uncached so
   * the step has logits to sample. Returns the number of cached tokens (out.length * blockSize).
   */
  findCachedPrefix(seq: KvSequence, out: number[]): number {
    out.length = 0;
    if (!this.enablePrefixCaching) return 0;
    const bs = this.blockSize;
    const maxBlocks = this.lookupBlocks(seq);
    this.ensureHashes(seq, maxBlocks);
    let parent = -1;
    for (let i = 0; i < maxBlocks; i++) {
      const b = this.pool.lookup(seq.blockHashes[i]!, parent, seq.tokens, i * bs);
      if (b < 0) break;
      out.push(b);
      parent = b;
    }
    return out.length * bs;
  }

  /**
   * Makes the sequence's block table cover `numTotalTokens` tokens, first attaching `cached` (from
   * findCachedPrefix, only for a sequence holding no blocks), then fresh blocks. Returns false, changing
   * nothing, when the free blocks do not suffice.
   */
  allocateSlots(seq: KvSequence, numTotalTokens: number, cached: readonly number[] = NO_BLOCKS): boolean {
    const table = seq.blockTable;
    const needed = this.blocksFor(numTotalTokens) - table.length - cached.length;
    let cachedFree = 0; // cached hits sitting in the free list: touching them uses up free blocks
    for (let i = 0; i < cached.length; i++) if (this.pool.refCount[cached[i]!] === 0) cachedFree++;
    if (Math.max(needed, 0) + cachedFree > this.pool.numFree) return false;
    if (cached.length > 0) {
      if (table.length !== 0) throw new Error('cached prefix blocks given to a sequence that holds blocks');
      for (let i = 0; i < cached.length; i++) {
        this.pool.touch(cached[i]!);
        table.push(cached[i]!);
      }
      seq.numCachedBlocks = cached.length;
    }
    if (needed > 0) this.pool.allocate(needed, table);
    return true;
  }

  /** Counts one admission's lookup for the hit-rate metrics. */
  recordPrefixLookup(numQueried: number, numHit: number): void {
    this.prefixQueries += numQueried;
    this.prefixHits += numHit;
  }

  /** After a step: offers the sequence's newly full, computed blocks to the prefix cache. */
  cacheComputedBlocks(seq: KvSequence): void {
    if (!this.enablePrefixCaching) return;
    const bs = this.blockSize;
    const numFull = Math.min(Math.floor(seq.numComputedTokens / bs), seq.blockTable.length);
    if (numFull <= seq.numCachedBlocks) return;
    this.ensureHashes(seq, numFull);
    const ids = seq.blockTable.ids;
    for (let i = seq.numCachedBlocks; i < numFull; i++) {
      this.pool.cacheBlock(ids[i]!, seq.blockHashes[i]!, i > 0 ? ids[i - 1]! : -1, seq.tokens, i * bs);
    }
    seq.numCachedBlocks = numFull;
  }

  /** Gives back every block of the sequence (finish, abort, preemption). Cached ones stay reusable. */
  free(seq: KvSequence): void {
    this.pool.release(seq.blockTable);
    seq.numCachedBlocks = 0;
  }

  /** Hashes the full blocks a prefix lookup will need, ahead of time: the engine calls it at submit, while
   *  a step runs, so schedule() finds them ready. */
  hashLookupBlocks(seq: KvSequence): void {
    if (this.enablePrefixCaching) this.ensureHashes(seq, this.lookupBlocks(seq));
  }

  /** Full blocks a prefix lookup may use: the last token is always computed, so the step has logits. */
  private lookupBlocks(seq: KvSequence): number {
    return Math.floor((seq.tokens.length - 1) / this.blockSize);
  }

  /** Extends seq.blockHashes to the first n full blocks. */
  private ensureHashes(seq: KvSequence, n: number): void {
    const hashes = seq.blockHashes;
    const bs = this.blockSize;
    for (let i = hashes.length; i < n; i++) {
      hashes.push(hashBlock(i > 0 ? hashes[i - 1]! : ROOT_HASH, seq.tokens, i * bs, (i + 1) * bs));
    }
  }
}

const NO_BLOCKS: readonly number[] = [];
