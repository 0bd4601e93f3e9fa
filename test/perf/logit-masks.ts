// Host cost of the logit masks (a script, not a test): allowed_token_ids travels as a bitmask of
// ceil(vocab / 32) words and bad_words as logit-bias entries (-inf), so they cost time on the event loop once
// per request (building the fixed mask) and in every step's ModelRunner.prepare() (copying each row's mask
// or entries into the StepBatch). Qwen2's vocabulary.
//
//   npx tsx test/perf/logit-masks.ts [--vocab 151936] [--steps 200]
import { parseArgs } from 'node:util';
import type { SamplingParams } from '../../src/engine/types.js';
import { ModelRunner } from '../../src/runner/model-runner.js';
import { Request } from '../../src/scheduler/request.js';
import { Scheduler, type SchedulerConfig } from '../../src/scheduler/scheduler.js';
import { greedy } from '../engine/greedy.js';

const { values } = parseArgs({
  options: { vocab: { type: 'string', default: '151936' }, steps: { type: 'string', default: '200' } },
});
const vocab = Number(values.vocab);
const steps = Number(values.steps);
const config: SchedulerConfig = {
  maxNumBatchedTokens: 2048,
  maxNumSeqs: 64,
  maxModelLen: 4096,
  blockSize: 16,
  numBlocks: 4096,
  enablePrefixCaching: false,
};
const base: SamplingParams = greedy(100);
const masks: Record<string, Partial<SamplingParams>> = {
  none: {},
  'allowed_token_ids (10 ids)': { allowedTokenIds: Array.from({ length: 10 }, (_, k) => k + 100) },
  'bad_words (20 words of 3 tokens)': { badWords: Array.from({ length: 20 }, (_, k) => [k + 1, k + 2, k + 3]) },
};

console.log(`vocabulary ${vocab}, ${steps} prepare() calls per row count`);
console.log('| rows | mask | mask build per request, ms | prepare() per step, ms |');
console.log('|---|---|---|---|');
for (const rows of [1, 8, 32]) {
  for (const [name, mask] of Object.entries(masks)) {
    const scheduler = new Scheduler(config);
    const runner = new ModelRunner(config);
    const t0 = performance.now();
    for (let i = 0; i < rows; i++) {
      const opts = {
        priority: 0,
        arrivalSeq: i,
        arrivalTime: 0,
        seed: i,
        eosTokenIds: [2],
        blockSize: 16,
        vocabSize: vocab,
      };
      scheduler.add(new Request(String(i), [1, 2, 3, 4], { ...base, ...mask }, opts));
    }
    const build = (performance.now() - t0) / rows;
    const out = scheduler.schedule();
    runner.prepare(out);
    const t1 = performance.now();
    for (let k = 0; k < steps; k++) runner.prepare(out);
    console.log(`| ${rows} | ${name} | ${build.toFixed(2)} | ${((performance.now() - t1) / steps).toFixed(3)} |`);
  }
}
