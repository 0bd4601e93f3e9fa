// The cost of structured outputs on the demo model (a script, not a test; prints tables):
//  1. xgrammar per constrained sequence and step: the mask (GrammarMatcher's next-token bitmask) and the
//     accept of the sampled token, over whole JSON-schema and regex generations; and the compile of a spec.
//  2. Unconstrained throughput with and without constrained requests in the same batches: the engine loop on
//     the real CPU engine, N greedy unconstrained requests alone, beside K more unconstrained ones (the same
//     batch size), and beside K constrained ones: the last two differ only by the grammar work.
//   npx tsx test/perf/structured-outputs.ts [--unconstrained 16] [--constrained 2] [--tokens 128] [--repeat 5]
//                                          [--vocab 128256]   (also: xgrammar over a synthetic vocabulary that large)
// Each throughput cell is the median of --repeat runs, the cases taking turns (this machine's cores are
// shared with other work).
import { parseArgs } from 'node:util';
import { finishEngineConfig, serverDefaults } from '../../src/config.js';
import { createEngine } from '../../src/engine/engine.js';
import type { EngineRequest, SamplingParams } from '../../src/engine/types.js';
import { GrammarService } from '../../src/grammar/grammar-service.js';
import { compileSpec, type GrammarSpec } from '../../src/grammar/grammar-spec.js';
import { loadXGrammar } from '../../src/grammar/xgrammar-module.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { storiesDir } from '../native/harness.js';
import { greedy } from '../engine/greedy.js';

const { values: args } = parseArgs({
  options: {
    unconstrained: { type: 'string', default: '16' },
    constrained: { type: 'string', default: '2' },
    tokens: { type: 'string', default: '128' },
    repeat: { type: 'string', default: '5' },
    vocab: { type: 'string', default: '0' },
  },
});
const numFree = Number(args.unconstrained);
const numConstrained = Number(args.constrained);
const maxTokens = Number(args.tokens);
const repeat = Number(args.repeat);

const person = JSON.stringify({
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    pets: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
  },
  required: ['name', 'age', 'pets'],
});
const specs: Array<[string, GrammarSpec]> = [
  ['JSON schema (person)', { kind: 'json_schema', schema: person }],
  ['JSON object', { kind: 'json_schema', schema: '{"type":"object"}' }],
  ['regex [a-z]{1,8}( [a-z]{1,8}){0,15}', { kind: 'regex', pattern: '[a-z]{1,8}( [a-z]{1,8}){0,15}' }],
];

const tokenizer = await TextTokenizer.load(storiesDir);
const service = await GrammarService.create(tokenizer, 512);

// 1. xgrammar's own cost: walk each grammar to its end, a pseudo-random allowed token at each step.
console.log('## xgrammar per constrained sequence, demo vocabulary (512 tokens)\n');
console.log('| grammar | compile, ms | steps | mask per step, µs (median / p90) | accept per step, µs (median) |');
console.log('|---|---|---|---|---|');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;
for (const [name, spec] of specs) {
  const before = service.stats.compileMs;
  const compiled = await service.compile(spec);
  const compileMs = service.stats.compileMs - before;
  const maskUs: number[] = [];
  const acceptUs: number[] = [];
  let rng = 12345;
  for (let run = 0; run < 20; run++) {
    const c = await service.constraint(compiled);
    for (let step = 0; step < 200; step++) {
      const t0 = performance.now();
      const mask = await c.nextMask();
      maskUs.push((performance.now() - t0) * 1000);
      const allowed: number[] = [];
      for (let t = 0; t < 512; t++) if ((mask[t >> 5]! >>> (t & 31)) & 1) allowed.push(t);
      const nonStop = allowed.filter((t) => !tokenizer.eosTokenIds.includes(t));
      if (nonStop.length === 0 || (nonStop.length < allowed.length && step > 30)) break;
      rng = (Math.imul(rng, 1103515245) + 12345) >>> 0;
      const t1 = performance.now();
      c.accept(nonStop[(rng >>> 16) % nonStop.length]!);
      acceptUs.push((performance.now() - t1) * 1000);
    }
    c.dispose();
  }
  console.log(
    `| ${name} | ${compileMs.toFixed(1)} | ${maskUs.length} | ${median(maskUs).toFixed(1)} / ${p90(maskUs).toFixed(1)} | ${median(acceptUs).toFixed(1)} |`,
  );
}

// 1b. The same over a synthetic vocabulary of real-vocabulary size (--vocab N): every byte, then N - 256 random
// pieces of 2 to 8 characters drawn from letters, digits, space and JSON punctuation, a raw vocabulary shaped
// like a byte-level BPE's. Only the order of magnitude carries over to a real tokenizer.
if (Number(args.vocab) > 0) {
  const n = Number(args.vocab);
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789      {}[]":,.-_\n';
  let r = 7;
  const rand = (k: number) => {
    r = (Math.imul(r, 1103515245) + 12345) >>> 0;
    return (r >>> 16) % k;
  };
  const seen = new Set<string>();
  const vocab: string[] = [];
  for (let b = 0; b < 256; b++) vocab.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  while (vocab.length < n) {
    let piece = '';
    for (let k = 2 + rand(7); k > 0; k--) piece += alphabet[rand(alphabet.length)];
    if (!seen.has(piece)) {
      seen.add(piece);
      vocab.push(piece);
    }
  }
  vocab[0] = '</s>';
  const xgi = loadXGrammar();
  const info = await xgi.xg.TokenizerInfo.createTokenizerInfo(vocab, 'byte_fallback', false, n, [0]);
  const compiler = await xgi.xg.GrammarCompiler.createGrammarCompiler(info, false);
  console.log(`\n## xgrammar per constrained sequence, synthetic vocabulary (${n} tokens)\n`);
  console.log('| grammar | compile, ms | steps | mask per step, µs (median / p90) |');
  console.log('|---|---|---|---|');
  for (const [name, spec] of specs) {
    const t0 = performance.now();
    const compiled = await compileSpec(xgi.xg, compiler, spec);
    const compileMs = performance.now() - t0;
    const maskUs: number[] = [];
    for (let run = 0; run < 5; run++) {
      const m = await xgi.xg.GrammarMatcher.createGrammarMatcher(compiled);
      for (let step = 0; step < 100; step++) {
        const t1 = performance.now();
        const mask = await m.getNextTokenBitmask();
        maskUs.push((performance.now() - t1) * 1000);
        const allowed: number[] = [];
        for (let t = 1; t < n; t++) if ((mask[t >> 5]! >>> (t & 31)) & 1) allowed.push(t);
        if (allowed.length === 0 || m.isTerminated()) break;
        m.acceptToken(allowed[rand(allowed.length)]!);
      }
      m.dispose();
    }
    console.log(
      `| ${name} | ${compileMs.toFixed(0)} | ${maskUs.length} | ${median(maskUs).toFixed(0)} / ${p90(maskUs).toFixed(0)} |`,
    );
  }
}

// 2. The engine loop on the real CPU engine.
const config = finishEngineConfig({ ...serverDefaults(), model: storiesDir, device: 'cpu' as const, threads: 1 });
const engine = await createEngine(config);
const greedyParams: SamplingParams = greedy(maxTokens);
const prompt = tokenizer.encode('Once upon a time, there was a little');
let nextId = 0;

async function drain(req: EngineRequest): Promise<{ tokens: number; endMs: number }> {
  let tokens = 0;
  for await (const out of engine.client.submit(req)) tokens = out.numOutputTokens;
  return { tokens, endMs: performance.now() };
}

/** Unconstrained output tokens per second (over the time until the last unconstrained request ended), with
 *  nothing else, with K more unconstrained requests (the same batch size), or with K constrained ones. */
async function run(beside: 'nothing' | 'unconstrained' | 'constrained'): Promise<number> {
  const t0 = performance.now();
  const others: Array<Promise<unknown>> = [];
  if (beside === 'constrained') {
    const compiled = await service.compile(specs[2]![1]);
    for (let i = 0; i < numConstrained; i++) {
      const constraint = await service.constraint(compiled);
      others.push(
        drain({
          id: `c${nextId++}`,
          promptTokenIds: prompt,
          sampling: { ...greedyParams, ignoreEos: false },
          constraint,
        }),
      );
    }
  } else if (beside === 'unconstrained') {
    for (let i = 0; i < numConstrained; i++)
      others.push(drain({ id: `u${nextId++}`, promptTokenIds: prompt, sampling: greedyParams }));
  }
  const free = await Promise.all(
    Array.from({ length: numFree }, () =>
      drain({ id: `f${nextId++}`, promptTokenIds: prompt, sampling: greedyParams }),
    ),
  );
  await Promise.all(others);
  const tokens = free.reduce((a, r) => a + r.tokens, 0);
  const end = Math.max(...free.map((r) => r.endMs));
  return tokens / ((end - t0) / 1000);
}

await run('nothing'); // warm-up
const cases = ['nothing', 'unconstrained', 'constrained'] as const;
const results: Record<(typeof cases)[number], number[]> = { nothing: [], unconstrained: [], constrained: [] };
for (let i = 0; i < repeat; i++) for (const c of cases) results[c].push(await run(c));
console.log(
  `\n## Unconstrained throughput, stories260K on the CPU engine (1 thread), ${numFree} greedy requests × ${maxTokens} tokens\n`,
);
console.log('| beside the unconstrained requests | their output tokens/s (median) | runs |');
console.log('|---|---|---|');
const names = {
  nothing: 'nothing',
  unconstrained: `${numConstrained} more unconstrained`,
  constrained: `${numConstrained} constrained (regex)`,
};
for (const c of cases)
  console.log(`| ${names[c]} | ${median(results[c]).toFixed(0)} | ${results[c].map((x) => x.toFixed(0)).join(', ')} |`);
await engine.close();
await service.close();
