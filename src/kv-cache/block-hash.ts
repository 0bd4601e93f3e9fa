// Chained hash of a full KV block: hash(parentHash, the block's tokens). A block's KV depends on every token
// before it, so the parent's hash is folded in; equal hashes then (almost) mean equal prefixes. The block pool
// does not trust the hash alone: a hit is verified against the cached block's tokens and parent block id, so
// a collision costs a miss, never a wrong KV. Nothing else changes a block's content in this engine (no
// LoRA, no multimodal inputs, one KV dtype per engine), so tokens are the whole key.
//
// The hash is two independent 32-bit lanes (murmur3-style mixing) folded into one 53-bit float key:
// Map<number, …> keys stay plain numbers (no strings, no bigint) on the hot path.

/** Hash of the empty prefix: the parent of block 0. */
export const ROOT_HASH = 0x2545f491;

const TWO_POW_32 = 4294967296;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of tokens[start, end) chained onto `parent` (a previous result or ROOT_HASH). Returns an integer
 *  in [0, 2^53). */
export function hashBlock(parent: number, tokens: ArrayLike<number>, start: number, end: number): number {
  // Seed both lanes from the parent's two halves so the chain carries all 53 bits.
  const parentLo = parent % TWO_POW_32;
  const parentHi = Math.floor(parent / TWO_POW_32);
  let a = (parentLo ^ 0x9e3779b9) | 0;
  let b = (parentHi ^ 0x7f4a7c15 ^ Math.imul(parentLo, 0x27d4eb2f)) | 0;
  for (let i = start; i < end; i++) {
    const t = tokens[i]! | 0;
    let k = Math.imul(t, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    a ^= k;
    a = (a << 13) | (a >>> 19);
    a = (Math.imul(a, 5) + 0xe6546b64) | 0;
    let m = Math.imul(t ^ 0x5bd1e995, 0x2f0b3f97);
    m ^= m >>> 15;
    b = (Math.imul(b ^ m, 0x01000193) + 0x165667b1) | 0;
  }
  const n = end - start;
  const lo = fmix32(a ^ n);
  const hi = fmix32(b ^ Math.imul(n, 0x61c88647) ^ lo) & 0x1fffff;
  return hi * TWO_POW_32 + lo;
}
