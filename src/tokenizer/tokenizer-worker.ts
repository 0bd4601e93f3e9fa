// One tokenizer thread of the TokenizerPool: loads the model's tokenizer and chat template once, then
// answers jobs one at a time (tokenizer-job.ts). No top-level await: under tsx (tests) this file runs as CommonJS.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { TextTokenizer } from './tokenizer.js';
import { type PoolJob, runJob, templateOf } from './tokenizer-job.js';
import type { TokenizerSpec } from './tokenizer-pool.js';

const spec = workerData as TokenizerSpec;
const port = parentPort!;

// Below the event loop's priority: when every core is busy tokenizing, the loop still gets the CPU it
// needs to answer /health and write streams. Linux sets niceness per thread (by its id, read from
// /proc/thread-self); elsewhere the thread keeps the process's priority.
try {
  setPriority(Number(readlinkSync('/proc/thread-self').split('/').at(-1)), 10);
} catch {
  // not Linux, or not permitted
}

const loaded = TextTokenizer.forModel(spec.dir, { dummy: spec.dummy, configPath: spec.configPath }).then(
  (tokenizer) => ({ tokenizer, template: templateOf(spec.chatTemplate, tokenizer) }),
);

loaded.then(
  () => port.postMessage({ ready: true }),
  (e: unknown) => port.postMessage({ ready: false, message: e instanceof Error ? e.message : String(e) }),
);

port.on('message', (job: PoolJob) => {
  loaded.then(
    (tools) => port.postMessage(runJob(job, tools)),
    () => undefined, // the load failure was reported once, above
  );
});
