// One tokenizer thread of the TokenizerPool: loads the model's tokenizer and chat template once, then
// answers jobs one at a time. No top-level await: under tsx (tests) this file runs as CommonJS.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { ChatTemplate, ChatTemplateError } from './chat-template.js';
import { TextTokenizer } from './tokenizer.js';
import type { PoolJob, PoolReply, TokenizerSpec } from './tokenizer-pool.js';

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
  (tokenizer) => ({
    tokenizer,
    template:
      spec.chatTemplate === undefined ? undefined : new ChatTemplate(spec.chatTemplate, tokenizer.specialTokens),
  }),
);

loaded.then(
  () => port.postMessage({ ready: true }),
  (e: unknown) => port.postMessage({ ready: false, message: e instanceof Error ? e.message : String(e) }),
);

function run(job: PoolJob, { tokenizer, template }: Awaited<typeof loaded>): PoolReply {
  if (job.op === 'encode') return { id: job.id, ids: tokenizer.encode(job.text, job.addSpecialTokens) };
  if (job.op === 'decode') return { id: job.id, ids: [], text: tokenizer.decode(job.ids, job.skipSpecialTokens) };
  if (!template) return { id: job.id, error: { kind: 'template', message: 'this model has no chat template' } };
  let text: string;
  try {
    text = template.render(job.messages, job.options);
  } catch (e) {
    if (e instanceof ChatTemplateError) return { id: job.id, error: { kind: 'template', message: e.message } };
    throw e;
  }
  // The rendered prompt is held to the same byte bound as a plain one, before it is tokenized.
  const bytes = Buffer.byteLength(text);
  if (bytes > job.maxBytes) return { id: job.id, error: { kind: 'too_long', message: `${bytes}`, bytes } };
  return { id: job.id, text, ids: tokenizer.encode(text, false) };
}

port.on('message', (job: PoolJob) => {
  loaded.then(
    (t) => {
      let reply: PoolReply;
      try {
        reply = run(job, t);
      } catch (e) {
        reply = { id: job.id, error: { kind: 'internal', message: e instanceof Error ? e.message : String(e) } };
      }
      port.postMessage(reply);
    },
    () => undefined, // the load failure was reported once, above
  );
});
