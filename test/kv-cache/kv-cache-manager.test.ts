import { describe, expect, it } from 'vitest';
import { BlockTable } from '../../src/kv-cache/block-table.js';
import { KvCacheManager, type KvSequence } from '../../src/kv-cache/kv-cache-manager.js';

function seq(tokens: number[]): KvSequence {
  return { tokens, numComputedTokens: 0, blockTable: new BlockTable(), blockHashes: [], numCachedBlocks: 0 };
}

/** Runs a sequence's whole prompt as if one step computed it, and caches its blocks. */
function computeAll(kv: KvCacheManager, s: KvSequence): void {
  const cached: number[] = [];
  kv.findCachedPrefix(s, cached);
  expect(kv.allocateSlots(s, s.tokens.length, cached)).toBe(true);
  s.numComputedTokens = s.tokens.length;
  kv.cacheComputedBlocks(s);
}

describe('KvCacheManager', () => {
  const prompt = Array.from({ length: 40 }, (_, i) => (i * 11) % 97);

  it('finds the longest cached prefix of full blocks, always leaving the last token to compute', () => {
    const kv = new KvCacheManager({ numBlocks: 16, blockSize: 8, enablePrefixCaching: true });
    const a = seq(prompt.slice(0, 32));
    computeAll(kv, a);
    const out: number[] = [];
    // Same 32 tokens: 4 full blocks cached, but only 3 may be used (the 32nd token must be recomputed).
    expect(kv.findCachedPrefix(seq(prompt.slice(0, 32)), out)).toBe(24);
    expect(out).toEqual([...a.blockTable.view()].slice(0, 3));
    // Longer prompt: all 4 blocks.
    expect(kv.findCachedPrefix(seq(prompt), out)).toBe(32);
    // Diverging in block 2: blocks 0 and 1 only.
    const diverged = prompt.slice();
    diverged[20] = 96;
    expect(kv.findCachedPrefix(seq(diverged), out)).toBe(16);
    // Diverging in block 0: nothing, even though later blocks have equal tokens.
    diverged[0] = 95;
    expect(kv.findCachedPrefix(seq(diverged), out)).toBe(0);
  });

  it('shares hit blocks by refcount and counts free cached hits against the free blocks', () => {
    const kv = new KvCacheManager({ numBlocks: 6, blockSize: 8, enablePrefixCaching: true });
    const a = seq(prompt.slice(0, 33));
    computeAll(kv, a); // 5 blocks, 4 cached
    kv.free(a);
    expect(kv.pool.numFree).toBe(6);
    const b = seq(prompt.slice(0, 40).concat([1, 2, 3, 4, 5, 6, 7, 8]));
    const cached: number[] = [];
    expect(kv.findCachedPrefix(b, cached)).toBe(32);
    // 48 tokens = 6 blocks: 4 hits (taken off the free list) + 2 new = all 6.
    expect(kv.allocateSlots(b, 48, cached)).toBe(true);
    expect(kv.pool.numFree).toBe(0);
    const c = seq(prompt.slice(0, 33));
    expect(kv.findCachedPrefix(c, cached)).toBe(32);
    // c would need one new block: none is free, and nothing changes.
    expect(kv.allocateSlots(c, 33, cached)).toBe(false);
    expect(c.blockTable.length).toBe(0);
    expect([...kv.pool.refCount]).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('does nothing with the cache when prefix caching is off', () => {
    const kv = new KvCacheManager({ numBlocks: 16, blockSize: 8, enablePrefixCaching: false });
    computeAll(kv, seq(prompt));
    expect(kv.pool.numCached).toBe(0);
    expect(kv.findCachedPrefix(seq(prompt), [])).toBe(0);
  });

  it('grows a table only by what the new tokens need', () => {
    const kv = new KvCacheManager({ numBlocks: 4, blockSize: 8, enablePrefixCaching: true });
    const s = seq(prompt.slice(0, 9));
    expect(kv.allocateSlots(s, 8)).toBe(true);
    expect(s.blockTable.length).toBe(1);
    expect(kv.allocateSlots(s, 8)).toBe(true);
    expect(s.blockTable.length).toBe(1);
    expect(kv.allocateSlots(s, 9)).toBe(true);
    expect(s.blockTable.length).toBe(2);
    expect(kv.allocateSlots(s, 33)).toBe(false);
    expect(s.blockTable.length).toBe(2);
  });
});

describe('KvCacheManager with two sequences computing the same prefix at once', () => {
  const bs = 4;
  const system = Array.from({ length: 8 }, (_, i) => 10 + i); // 2 full blocks, shared
  const tail = [40, 41, 42, 43, 44, 45, 46, 47, 48]; // 2 more full blocks + 1 token

  function computeTo(kv: KvCacheManager, s: KvSequence, n: number): void {
    expect(kv.allocateSlots(s, n)).toBe(true);
    s.numComputedTokens = n;
    kv.cacheComputedBlocks(s);
  }

  it('does not let a block behind a duplicate (uncached) parent take the hash of a reachable block', () => {
    const kv = new KvCacheManager({ numBlocks: 32, blockSize: bs, enablePrefixCaching: true });
    // d and e are admitted in the same step: neither finds the shared prefix cached, both compute it.
    const d = seq([...system, 1, 2, 3, 4, 5]);
    const e = seq([...system, ...tail]);
    computeTo(kv, d, d.tokens.length); // d's prefix blocks are cached first
    computeTo(kv, e, e.tokens.length); // e's are duplicates; its tail blocks hang off its own uncached prefix
    // e's follow-up turn finds the prefix through d's blocks; e's tail blocks cannot be reached from there.
    const turn2 = seq([...system, ...tail, 50, 51, 52]);
    const hit: number[] = [];
    expect(kv.findCachedPrefix(turn2, hit)).toBe(8);
    expect(kv.allocateSlots(turn2, turn2.tokens.length, hit)).toBe(true);
    turn2.numComputedTokens = turn2.tokens.length;
    kv.cacheComputedBlocks(turn2);
    // Turn 2 computed its 5 full blocks behind d's prefix: a third turn must find every one of them.
    const turn3 = seq([...turn2.tokens, 60, 61, 62, 63]);
    expect(kv.findCachedPrefix(turn3, hit)).toBe(20);
  });
});
