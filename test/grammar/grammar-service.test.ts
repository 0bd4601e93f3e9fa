// The grammar service over the demo model's real tokenizer: the vocabulary xgrammar sees (checked against the
// Hugging Face tokenizer's own decoding), the compile cache, invalid specs (a GrammarError with xgrammar's
// reason, after which the service works as before), and eviction that leaves running matchers alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrammarError } from '../../src/grammar/grammar-probe.js';
import { GrammarService } from '../../src/grammar/grammar-service.js';
import { choiceSpec, type GrammarSpec } from '../../src/grammar/grammar-spec.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { storiesDir } from '../native/harness.js';

const VOCAB = 512;
let tok: TextTokenizer;
let service: GrammarService;

beforeAll(async () => {
  tok = await TextTokenizer.load(storiesDir);
  service = await GrammarService.create(tok, VOCAB);
});
afterAll(() => service?.close());

const allowed = (mask: Int32Array) =>
  Array.from({ length: VOCAB }, (_, t) => t).filter((t) => ((mask[t >> 5]! >>> (t & 31)) & 1) === 1);

describe('GrammarService', () => {
  it('the first tokens allowed for a literal are exactly those whose text begins it', async () => {
    const word = 'Once upon';
    const c = await service.constraint(await service.compile(choiceSpec([word])));
    const got = allowed(await c.nextMask());
    // The reference: the tokenizer's own decoding of each token (ids after <s>, so the decoder's strip of a
    // leading space applies to the <s> and not to the token).
    const bos = tok.bosTokenId!;
    const want: number[] = [];
    for (let t = 0; t < VOCAB; t++) {
      if (tok.isSpecial(t)) continue;
      const text = tok.decode([bos, t], false).slice('<s>'.length);
      if (text.length > 0 && word.startsWith(text)) want.push(t);
    }
    expect(want.length).toBeGreaterThanOrEqual(2); // 'O' and the byte <0x4F> at least
    expect(got).toEqual(want);
    c.dispose();
  });

  it('walks a literal to its end, where only EOS is left', async () => {
    const word = 'a big dog';
    const c = await service.constraint(await service.compile(choiceSpec([word])));
    const ids: number[] = [];
    for (
      let mask = allowed(await c.nextMask());
      !mask.every((t) => tok.eosTokenIds.includes(t));
      mask = allowed(await c.nextMask())
    ) {
      const t = mask[mask.length - 1]!; // the longest piece: the highest ids are merges
      expect(c.accept(t)).toBe(true);
      ids.push(t);
      expect(ids.length).toBeLessThan(20);
    }
    expect(tok.decode([tok.bosTokenId!, ...ids], false).slice('<s>'.length)).toBe(word);
    expect(c.accept(tok.eosTokenIds[0]!)).toBe(true);
    expect(c.isTerminated()).toBe(true);
    c.dispose();
    c.dispose(); // idempotent
  });

  it('compiles a spec once and serves it from the cache after', async () => {
    const spec: GrammarSpec = { kind: 'regex', pattern: 'cache-[0-9]+' };
    const before = { ...service.stats };
    const [a, b] = await Promise.all([service.compile(spec), service.compile(spec)]);
    expect(a).toBe(b);
    await service.compile(spec);
    expect(service.stats.compiled - before.compiled).toBe(1);
    expect(service.stats.hits - before.hits).toBe(2);
  });

  it('an invalid spec is a GrammarError with the reason; the service goes on as before', async () => {
    const bad: Array<[GrammarSpec, RegExp]> = [
      [{ kind: 'json_schema', schema: '{"type": "nonsense"}' }, /Unsupported type "nonsense"/],
      [{ kind: 'regex', pattern: '(a' }, /Regex parsing error/],
      [{ kind: 'ebnf', grammar: 'root ::= x' }, /Rule "x" is not defined/],
    ];
    for (const [spec, why] of bad) {
      const e = await service.compile(spec).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(GrammarError);
      expect((e as Error).message).toMatch(why);
    }
    const c = await service.constraint(await service.compile(choiceSpec(['ok'])));
    expect(allowed(await c.nextMask()).length).toBeGreaterThan(0);
    c.dispose();
  });

  it('a matcher outlives the eviction of its compiled grammar', async () => {
    const first = await service.constraint(await service.compile(choiceSpec(['evicted'])));
    for (let i = 0; i < 70; i++) await service.compile({ kind: 'regex', pattern: `x{${i + 1}}` });
    const t = allowed(await first.nextMask());
    expect(t.length).toBeGreaterThan(0);
    expect(first.accept(t[0]!)).toBe(true);
    first.dispose();
  });
});
