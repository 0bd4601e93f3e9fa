// Checks a grammar spec before the serving xgrammar sees it. xgrammar (compiled to WebAssembly without C++
// exceptions) aborts the call on an invalid schema, regex or grammar, which would leave the instance that
// holds every running request's grammar state in an unknown state. So each new spec is first parsed by a
// probe on its own thread with its own instance; one that fails there is a 400 with xgrammar's message, and
// the probe thread, which took the abort, is replaced for the next spec. Parsing is cheap next to compiling
// (no vocabulary is involved), and it happens off the event loop.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { GrammarSpec } from './grammar-spec.js';

export interface ProbeJob {
  id: number;
  spec: GrammarSpec;
}
export type ProbeReply = { id: number; error?: string };

/** An invalid schema, regex or grammar, with xgrammar's reason. */
export class GrammarError extends Error {
  override name = 'GrammarError';
}

/** Under tsx or vitest this module is TypeScript source: the worker then loads its .ts through tsx's hook. */
function spawn(): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./grammar-probe-worker.js', here));
  const tsx = createRequire(here).resolve('tsx/cjs/api');
  const entry = fileURLToPath(new URL('./grammar-probe-worker.ts', here));
  return new Worker(`require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(entry)});`, { eval: true });
}

export class GrammarProbe {
  private worker: Worker | undefined;
  private nextId = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** Resolves when xgrammar parses the spec; rejects with a GrammarError saying why it does not. One spec
   *  at a time: a failure ends the thread, so nothing else may be queued on it. */
  check(spec: GrammarSpec): Promise<void> {
    const run = this.chain.then(() => this.run(spec));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private run(spec: GrammarSpec): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the grammar probe is closed'));
    this.worker ??= this.start();
    const worker = this.worker;
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const onMessage = (r: ProbeReply) => {
        if (r.id !== id) return;
        done();
        if (r.error === undefined) resolve();
        else {
          this.worker = undefined; // it exits after a failure
          reject(new GrammarError(r.error));
        }
      };
      const onExit = (code: number) => {
        done();
        this.worker = undefined;
        reject(new Error(`the grammar probe thread exited (code ${code}) before answering`));
      };
      const done = () => {
        worker.off('message', onMessage);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('exit', onExit);
      worker.postMessage({ id, spec } satisfies ProbeJob);
    });
  }

  private start(): Worker {
    const w = spawn();
    w.unref(); // an idle probe never keeps the process alive
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.worker?.terminate();
    this.worker = undefined;
  }
}
