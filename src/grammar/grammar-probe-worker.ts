// The grammar probe's thread (grammar-probe.ts): parses each spec with its own xgrammar and answers ok or
// xgrammar's message. No top-level await: under tsx (tests) this file runs as CommonJS.
import { parentPort } from 'node:worker_threads';
import { parseSpec } from './grammar-spec.js';
import type { ProbeJob, ProbeReply } from './grammar-probe.js';
import { loadXGrammar } from './xgrammar-module.js';

const port = parentPort!;
const instance = loadXGrammar();

port.on('message', (job: ProbeJob) => {
  parseSpec(instance.xg, job.spec).then(
    () => port.postMessage({ id: job.id } satisfies ProbeReply),
    (e: unknown) => {
      const message = instance.takeError() ?? (e instanceof Error ? e.message : String(e));
      port.postMessage({ id: job.id, error: message } satisfies ProbeReply);
      // An aborted call leaves the instance in a state nothing vouches for: this thread is done.
      port.close();
      process.exit(0);
    },
  );
});
