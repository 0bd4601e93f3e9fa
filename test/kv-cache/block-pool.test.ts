import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockPool } from '../../src/kv-cache/block-pool.js';
import { BlockTable } from '../../src/kv-cache/block-table.js';
import { FreeBlockQueue } from '../../src/kv-cache/free-block-queue.js';
import { hashBlock, ROOT_HASH } from '../../src/kv-cache/block-hash.js';

describe('FreeBlockQueue', () => {
  it('behaves like an array-backed queue under random operations', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.tuple(fc.constantFrom('pop', 'push', 'remove'), fc.nat()), { maxLength: 200 }),
        (n, ops) => {
          const q = new FreeBlockQueue(n);
          const model = Array.from({ length: n }, (_, i) => i);
          for (const [op, x] of ops) {
            if (op === 'pop' && model.length > 0) {
              expect(q.popHead()).toBe(model.shift());
            } else if (op === 'push') {
              const out = Array.from({ length: n }, (_, i) => i).filter((b) => !model.includes(b));
              if (out.length === 0) continue;
              const b = out[x % out.length]!;
              q.pushTail(b);
              model.push(b);
            } else if (op === 'remove' && model.length > 0) {
              const b = model[x % model.length]!;
              q.remove(b);
              model.splice(model.indexOf(b), 1);
            }
            expect(q.toArray()).toEqual(model);
            expect(q.size).toBe(model.length);
          }
        },
      ),
    );
  });

  it('refuses to free a free block or remove a used one', () => {
    const q = new FreeBlockQueue(2);
    expect(() => q.pushTail(0)).toThrow(/already free/);
    q.popHead();
    expect(() => q.remove(0)).toThrow(/not free/);
  });
});

describe('BlockPool', () => {
  const tokens = Array.from({ length: 64 }, (_, i) => i % 13);

  it('hands out the least recently freed blocks last, tail blocks of a request first', () => {
    const pool = new BlockPool(6, 4);
    const a = new BlockTable();
    const b = new BlockTable();
    pool.allocate(3, a); // 0 1 2
    pool.allocate(2, b); // 3 4
    expect(pool.freeBlocks()).toEqual([5]);
    pool.release(a); // tail first: 2 1 0
    pool.release(b); // 4 3
    expect(pool.freeBlocks()).toEqual([5, 2, 1, 0, 4, 3]);
    const c = new BlockTable();
    pool.allocate(2, c);
    expect([...c.view()]).toEqual([5, 2]);
  });

  it('keeps freed blocks cached until evicted, and a touched free block leaves the free list', () => {
    const pool = new BlockPool(3, 4);
    const a = new BlockTable();
    pool.allocate(2, a);
    const h0 = hashBlock(ROOT_HASH, tokens, 0, 4);
    const h1 = hashBlock(h0, tokens, 4, 8);
    pool.cacheBlock(a.ids[0]!, h0, -1, tokens, 0);
    pool.cacheBlock(a.ids[1]!, h1, a.ids[0]!, tokens, 4);
    pool.release(a);
    expect(pool.lookup(h0, -1, tokens, 0)).toBe(0);
    expect(pool.lookup(h1, 0, tokens, 4)).toBe(1);
    pool.touch(0);
    expect(pool.refCount[0]).toBe(1);
    expect(pool.freeBlocks()).toEqual([2, 1]);
    // Allocating two evicts block 1 (its hash is gone); block 0 is held and stays cached.
    const b = new BlockTable();
    pool.allocate(2, b);
    expect(pool.lookup(h1, 0, tokens, 4)).toBe(-1);
    expect(pool.isCached(0)).toBe(true);
    expect(pool.isCached(1)).toBe(false);
  });

  it('rejects a hit whose content or parent differs, even under the same hash', () => {
    const pool = new BlockPool(4, 4);
    const a = new BlockTable();
    pool.allocate(2, a);
    pool.cacheBlock(0, 111, -1, tokens, 0);
    pool.cacheBlock(1, 222, 0, tokens, 4);
    expect(pool.lookup(111, -1, tokens, 4)).toBe(-1); // other tokens, same (colliding) hash
    expect(pool.lookup(222, 3, tokens, 4)).toBe(-1); // other parent
    // The parent is freed and reused for new content: the child's KV no longer matches any prefix.
    pool.release(a);
    const b = new BlockTable();
    pool.allocate(4, b); // evicts both, generation of 0 and 1 moves on
    pool.cacheBlock(0, 111, -1, tokens, 0);
    pool.release(b);
    expect(pool.lookup(111, -1, tokens, 0)).toBe(0);
    expect(pool.lookup(222, 0, tokens, 4)).toBe(-1);
  });

  it('rejects a child whose parent block was reused, even with matching hash and tokens', () => {
    const pool = new BlockPool(3, 2);
    const t = [5, 6, 7, 8];
    const a = new BlockTable();
    const a2 = new BlockTable();
    pool.allocate(1, a); // block 0
    pool.allocate(1, a2); // block 1, the child of block 0
    pool.cacheBlock(0, 10, -1, t, 0);
    pool.cacheBlock(1, 20, 0, t, 2);
    pool.release(a);
    pool.release(a2); // free: 2 0 1
    const b = new BlockTable();
    pool.allocate(2, b); // takes 2 and 0: block 0 gets new content, block 1 stays cached
    expect(pool.isCached(1)).toBe(true);
    // Block 0 is recomputed with the same tokens under the same hash; block 1's KV was computed behind
    // the old block 0, and must not be taken for a child of the new one.
    pool.cacheBlock(0, 10, -1, t, 0);
    expect(pool.lookup(10, -1, t, 0)).toBe(0);
    expect(pool.lookup(20, 0, t, 2)).toBe(-1);
  });

  it('throws on a double free', () => {
    const pool = new BlockPool(2, 4);
    const a = new BlockTable();
    pool.allocate(1, a);
    const copy = new BlockTable();
    copy.push(a.ids[0]!);
    pool.release(a);
    expect(() => pool.release(copy)).toThrow(/already free|twice/);
  });
});

describe('hashBlock', () => {
  it('depends on the tokens, their order and the parent', () => {
    const t = [1, 2, 3, 4, 4, 3, 2, 1];
    const a = hashBlock(ROOT_HASH, t, 0, 4);
    expect(hashBlock(ROOT_HASH, t, 0, 4)).toBe(a);
    expect(hashBlock(ROOT_HASH, t, 4, 8)).not.toBe(a);
    expect(hashBlock(a, t, 0, 4)).not.toBe(a);
    expect(Number.isSafeInteger(a) && a >= 0).toBe(true);
  });

  it('has no collisions over many random blocks', () => {
    const seen = new Set<number>();
    let parent = ROOT_HASH;
    const t = new Int32Array(16);
    for (let i = 0; i < 200_000; i++) {
      for (let j = 0; j < 16; j++) t[j] = (Math.random() * 32000) | 0;
      parent = hashBlock(i % 7 === 0 ? ROOT_HASH : parent, t, 0, 16);
      seen.add(parent);
    }
    expect(seen.size).toBe(200_000);
  });
});
