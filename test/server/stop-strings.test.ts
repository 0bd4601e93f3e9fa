// StopStringMatcher against the naive definition: stop after the first piece that completes a stop
// string, cutting at its earliest occurrence — computed by searching the whole text after every piece.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StopStringMatcher } from '../../src/server/stop-strings.js';

/** The earliest occurrence of any stop string in `text` (ties: any of them). */
function earliest(text: string, stops: string[]): { at: number; stop: string } | undefined {
  let best: { at: number; stop: string } | undefined;
  for (const stop of stops) {
    const at = stop ? text.indexOf(stop) : -1;
    if (at >= 0 && (!best || at < best.at)) best = { at, stop };
  }
  return best;
}

/**
 * The reference, by definition (vLLM's): after each new piece, if the text so far contains a stop
 * string, the output is that text cut at the earliest occurrence. Searches the whole text every time.
 */
function naive(pieces: string[], stops: string[]): { text: string; stop?: string } {
  let text = '';
  for (const p of pieces) {
    text += p;
    const hit = earliest(text, stops);
    if (hit) return { text: text.slice(0, hit.at), stop: hit.stop };
  }
  return { text };
}

function run(pieces: string[], stops: string[]): { text: string; stop?: string } {
  const m = new StopStringMatcher(stops);
  let out = '';
  for (const p of pieces) {
    const r = m.push(p);
    out += r.text;
    if (r.stop !== undefined) return { text: out, stop: r.stop };
  }
  return { text: out + m.flush() };
}

describe('StopStringMatcher', () => {
  it('holds back a partial match and releases it when it does not complete', () => {
    const m = new StopStringMatcher(['STOP']);
    expect(m.push('abc ST')).toEqual({ text: 'abc ' });
    expect(m.push('O')).toEqual({ text: '' });
    expect(m.push('x')).toEqual({ text: 'STOx' });
    expect(m.push('ST')).toEqual({ text: '' });
    expect(m.push('OP and more')).toEqual({ text: '', stop: 'STOP' });
  });

  it('keeps the stop string with include_stop_str_in_output', () => {
    const m = new StopStringMatcher(['\n\n'], true);
    expect(m.push('one\n')).toEqual({ text: 'one' });
    expect(m.push('\ntwo')).toEqual({ text: '\n\n', stop: '\n\n' });
  });

  it('is inactive before min_tokens: nothing held, nothing matched', () => {
    const m = new StopStringMatcher(['a']);
    expect(m.push('banana', false)).toEqual({ text: 'banana' });
    expect(m.push('xa', true)).toEqual({ text: 'x', stop: 'a' });
  });

  it('equals the naive cut for any text split into any pieces (property)', () => {
    const alphabet = fc.constantFrom('a', 'b', 'c', ' ', '日', '\n');
    const str = (max: number) => fc.array(alphabet, { maxLength: max }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.array(str(6), { maxLength: 12 }), fc.array(str(4), { maxLength: 4 }), (pieces, stops) => {
        const full = pieces.join('');
        const want = naive(pieces, stops);
        const got = run(pieces, stops);
        expect(got.text).toBe(want.text);
        // Two stop strings may start at the same place; either one names the cut correctly.
        expect(got.stop === undefined).toBe(want.stop === undefined);
        if (got.stop !== undefined) expect(full.startsWith(got.stop, got.text.length)).toBe(true);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 2000) },
    );
  });

  it('never sends text that a later piece turns into a stop string (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[ab]{0,3}$/), { maxLength: 10 }),
        fc.stringMatching(/^[ab]{1,4}$/),
        (pieces, stop) => {
          const m = new StopStringMatcher([stop]);
          let sent = '';
          for (const p of pieces) {
            const r = m.push(p);
            sent += r.text;
            expect(sent.includes(stop)).toBe(false);
            if (r.stop) return;
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
