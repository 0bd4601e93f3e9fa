// StopStringMatcher against the naive definition: the full text cut at the earliest occurrence of any
// stop string, however the text is split into pieces.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StopStringMatcher } from '../../src/server/stop-strings.js';

/** The reference: search the whole text at once. */
function naive(text: string, stops: string[]): { text: string; stop?: string } {
  let at = -1;
  let which: string | undefined;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (s && i >= 0 && (at < 0 || i < at || (i === at && s.length > which!.length))) {
      at = i;
      which = s;
    }
  }
  return at < 0 ? { text } : { text: text.slice(0, at), stop: which };
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

  it('equals the naive cut for any split of any text (property)', () => {
    const alphabet = fc.constantFrom('a', 'b', 'c', ' ', '日', '\n');
    const str = (max: number) => fc.array(alphabet, { maxLength: max }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.array(str(6), { maxLength: 12 }), fc.array(str(4), { maxLength: 4 }), (pieces, stops) => {
        const want = naive(pieces.join(''), stops);
        const got = run(pieces, stops);
        expect(got.text).toBe(want.text);
        expect(got.stop).toBe(want.stop);
      }),
      { numRuns: 2000 },
    );
  });

  it('never sends text that a later piece turns into a stop string (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[ab]{0,3}$/), { maxLength: 10 }), fc.stringMatching(/^[ab]{1,4}$/), (pieces, stop) => {
        const m = new StopStringMatcher([stop]);
        let sent = '';
        for (const p of pieces) {
          const r = m.push(p);
          sent += r.text;
          expect(sent.includes(stop)).toBe(false);
          if (r.stop) return;
        }
      }),
      { numRuns: 1000 },
    );
  });
});
