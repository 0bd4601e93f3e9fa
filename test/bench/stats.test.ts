// Summary statistics agree with numpy (the reference vLLM uses). Expected values were computed with numpy 2.4:
//   x = [0.3, 1.7, 2.2, 0.9, 5.1, 3.3, 0.4, 2.8, 1.1]
//   np.mean 1.9777777777777774, np.median 1.7, np.std 1.4733014911926943,
//   np.percentile at 50, 90, 99, 99.9, 25: 1.7, 3.66, 4.956, 5.0856, 0.9
//   y = [4.0, 1.0]: np.std 1.5, np.percentile(y, 99) 3.97, np.median 2.5
import { describe, expect, it } from 'vitest';
import { percentileKey, summarize } from '../../src/bench/stats.js';
import { parseGoodput } from '../../src/bench/metrics.js';

describe('stats (numpy conventions)', () => {
  it('matches numpy on a sample', () => {
    const s = summarize([0.3, 1.7, 2.2, 0.9, 5.1, 3.3, 0.4, 2.8, 1.1], [50, 90, 99, 99.9, 25]);
    expect(s.mean).toBeCloseTo(1.9777777777777774, 12);
    expect(s.median).toBeCloseTo(1.7, 12);
    expect(s.std).toBeCloseTo(1.4733014911926943, 12);
    const expected = [1.7, 3.66, 4.956, 5.0856, 0.9];
    for (const [i, [, v]] of s.percentiles.entries()) expect(v).toBeCloseTo(expected[i]!, 12);
  });

  it('scales (seconds → ms) and handles two points and empty samples', () => {
    const s = summarize([4.0, 1.0], [99], 1000);
    expect(s.std).toBeCloseTo(1500, 9);
    expect(s.median).toBeCloseTo(2500, 9);
    expect(s.percentiles[0]![1]).toBeCloseTo(3970, 9);
    expect(summarize([], [99])).toEqual({ mean: 0, median: 0, std: 0, percentiles: [[99, 0]] });
  });

  it('percentile keys as vLLM writes them', () => {
    expect(percentileKey(99)).toBe('99');
    expect(percentileKey(99.9)).toBe('99.9');
  });
});

describe('--goodput', () => {
  it('parses KEY:MS pairs, space or comma separated', () => {
    expect(parseGoodput('ttft:500,tpot:50')).toEqual({ ttft: 500, tpot: 50 });
    expect(parseGoodput('e2el:1e4')).toEqual({ e2el: 10000 });
  });
  it('rejects unknown keys and bad numbers', () => {
    expect(() => parseGoodput('itl:5')).toThrow(/KEY:MS/);
    expect(() => parseGoodput('ttft:-1')).toThrow(/KEY:MS/);
    expect(() => parseGoodput('ttft:abc')).toThrow(/KEY:MS/);
    expect(() => parseGoodput('')).toThrow(/at least one/);
  });
});
