// The restart backoff: doubling with each failure in a row up to 60 s, exhausted past --max-restarts, and a run
// of failures ended by an engine that served a minute (the clock is vitest's fake one).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RestartPolicy } from '../../src/server/restart-policy.js';

afterEach(() => vi.useRealTimers());

describe('RestartPolicy', () => {
  it('doubles the delay with each failure in a row, caps it at 60 s, and gives up past maxRestarts', () => {
    const p = new RestartPolicy(1000, 7);
    const delays = Array.from({ length: 7 }, () => p.failure());
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000]);
    expect(p.exhausted).toBe(false);
    expect(p.failure()).toBeUndefined();
    expect(p.exhausted).toBe(true);
  });

  it('an engine that served for a minute ends the run; a shorter one does not', () => {
    vi.useFakeTimers();
    const p = new RestartPolicy(500, 5);
    p.serving();
    p.engineFailed();
    expect(p.failure()).toBe(500);
    p.serving();
    vi.advanceTimersByTime(30_000);
    p.engineFailed();
    expect(p.failure()).toBe(1000); // the run goes on
    p.serving();
    vi.advanceTimersByTime(61_000);
    p.engineFailed();
    expect(p.nextDelayMs).toBe(500);
    expect(p.failure()).toBe(500);
  });
});
