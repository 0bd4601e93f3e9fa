// Tokenizing prompts and rendering chat templates off the event loop. Both cost time superlinear in the
// text (a pure-JS BPE over a long word, a template over thousands of messages): on the main thread one
// large prompt would stall /health and every stream for seconds. A few worker threads, each holding its
// own copy of the tokenizer and template, take those jobs; the main thread keeps only the cheap per-token
// work (incremental detokenization of outputs, logprob token texts) — and short texts. Handing a job to a
// thread and its answer back costs two thread wake-ups (~0.25 ms on a 2-core VM), more than tokenizing a short
// prompt takes, and all of it is time to first token. So a text (or chat) that the main thread's tokenizer
// encodes within INLINE_BUDGET_MS is done on the loop at once — within ALONE_BUDGET_MS when the request is the
// only one in flight, so that no stream waits on the loop meanwhile: the limits are timed on this machine when
// the pool starts. The same code runs both ways (tokenizer-job.ts), so the answers are the same.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ChatTemplateError, type RenderOptions, type TemplateMessage } from './chat-template.js';
import type { TextTokenizer } from './tokenizer.js';
import { type JobTools, type PoolJob, type PoolReply, runJob } from './tokenizer-job.js';

/** What a worker needs to load the same tokenizer and template as the main thread. */
export interface TokenizerSpec {
  dir: string;
  dummy: boolean; // --load-format dummy: a synthetic tokenizer when the folder has none
  configPath: string;
  chatTemplate?: string; // the template source, already known to parse
}

/** How long the event loop may spend on one text it tokenizes itself: well under an engine step. */
const INLINE_BUDGET_MS = 0.25;
/** The same for the only request in flight: nothing but a request arriving meanwhile waits on the loop. */
const ALONE_BUDGET_MS = 1;
/** The longest text ever tokenized inline, and the sample the limits are timed on; the only request in flight's
 *  up to ALONE_MAX_CHARS, for a tokenizer that encodes a sample that long within ALONE_BUDGET_MS. */
const INLINE_MAX_CHARS = 4096;
const ALONE_MAX_CHARS = 16384;
const SAMPLE =
  'Once upon a time, in a small town by the sea, there lived a girl named Mia who loved to collect shells. ';
/** The sample is encoded this long (and at least WARM_RUNS times) before it is timed: the first runs are those of
 *  code not yet optimized, several times slower than the code every later request runs. */
const WARM_MS = 50;
const WARM_RUNS = 10;

/** The best time of a few runs of `tokenizer` encoding `chars` characters of SAMPLE, once warm. */
function encodeMs(tokenizer: TextTokenizer, chars: number): number {
  const sample = SAMPLE.repeat(Math.ceil(chars / SAMPLE.length)).slice(0, chars);
  const warmUntil = performance.now() + WARM_MS;
  for (let i = 0; i < WARM_RUNS || performance.now() < warmUntil; i++) tokenizer.encode(sample, true);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    tokenizer.encode(sample, true);
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/** The longest texts `tokenizer` encodes here within INLINE_BUDGET_MS and ALONE_BUDGET_MS, assuming a cost linear in
 *  the length up to the sample's (which overestimates what tokenizers superlinear in it take), never beyond it. */
export function inlineLimits(tokenizer: TextTokenizer): { maxChars: number; aloneMaxChars: number } {
  const within = (budgetMs: number, chars: number, ms: number) => Math.floor(chars * Math.min(1, budgetMs / ms));
  const ms = encodeMs(tokenizer, INLINE_MAX_CHARS);
  const maxChars = within(INLINE_BUDGET_MS, INLINE_MAX_CHARS, ms);
  // A tokenizer that takes the whole sample within the alone budget is timed on the longer one.
  const aloneMaxChars =
    ms < ALONE_BUDGET_MS
      ? within(ALONE_BUDGET_MS, ALONE_MAX_CHARS, encodeMs(tokenizer, ALONE_MAX_CHARS))
      : within(ALONE_BUDGET_MS, INLINE_MAX_CHARS, ms);
  return { maxChars, aloneMaxChars: Math.max(maxChars, aloneMaxChars) };
}

/** The main thread's own tokenizer and template, for the jobs short enough to do inline. */
export interface InlineTools extends JobTools {
  /** Texts (a chat: its messages' text) up to this many UTF-16 units run inline; default: inlineLimits()'s. */
  maxChars?: number;
  /** The same for a job of the only request in flight; default: maxChars when that is given, else inlineLimits()'s. */
  aloneMaxChars?: number;
}

/** How a job is asked for. */
export interface JobOptions {
  /** Its request is the only one in flight on the server: no stream waits on the loop while it runs inline. */
  alone?: boolean;
}

/** A rendered chat prompt longer than the byte limit (it was not tokenized). */
export class RenderedTooLong extends Error {
  override name = 'RenderedTooLong';
  constructor(readonly bytes: number) {
    super(`the rendered chat prompt has ${bytes} bytes`);
  }
}

interface Pending {
  resolve: (r: { ids: number[]; text?: string }) => void;
  reject: (e: Error) => void;
}

interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
}

/** Under tsx or vitest this module is TypeScript source: the worker then loads its .ts through tsx's hook. */
function spawn(spec: TokenizerSpec): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./tokenizer-worker.js', here), { workerData: spec });
  const tsx = createRequire(here).resolve('tsx/cjs/api');
  const entry = fileURLToPath(new URL('./tokenizer-worker.ts', here));
  const boot = `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(entry)});`;
  return new Worker(boot, { eval: true, workerData: spec });
}

export class TokenizerPool {
  private readonly threads: Thread[] = [];
  private nextId = 0;
  private closed = false;
  /** Jobs submitted so far (tests read it to see that a refused prompt was never tokenized). */
  jobs = 0;

  private readonly inline: (JobTools & { maxChars: number; aloneMaxChars: number }) | undefined;
  /** Jobs done on the main thread (a part of `jobs`). */
  inlineJobs = 0;

  private constructor(
    private readonly spec: TokenizerSpec,
    inline: InlineTools | undefined,
  ) {
    if (!inline) return;
    const maxChars = inline.maxChars;
    const aloneMaxChars = inline.aloneMaxChars ?? maxChars;
    const timed = maxChars === undefined || aloneMaxChars === undefined ? inlineLimits(inline.tokenizer) : undefined;
    this.inline = {
      ...inline,
      maxChars: maxChars ?? timed!.maxChars,
      aloneMaxChars: aloneMaxChars ?? timed!.aloneMaxChars,
    };
  }

  /** Starts `size` threads and resolves once every one has loaded the tokenizer (rejects if one cannot). With
   *  `inline` (the same tokenizer and template, on this thread) short texts are done here instead. */
  static async start(spec: TokenizerSpec, size: number, inline?: InlineTools): Promise<TokenizerPool> {
    const pool = new TokenizerPool(spec, inline);
    try {
      await Promise.all(Array.from({ length: Math.max(1, size) }, () => pool.add()));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /** Jobs submitted and not answered yet. */
  get pending(): number {
    return this.threads.reduce((n, t) => n + t.pending.size, 0);
  }

  encode(text: string, addSpecialTokens: boolean, opts: JobOptions = {}): Promise<number[]> {
    return this.submit((id) => ({ id, op: 'encode', text, addSpecialTokens }), opts, text.length).then((r) => r.ids);
  }

  /** For whole token lists a client sends (/detokenize); outputs are detokenized incrementally, on the loop. */
  decode(ids: number[], skipSpecialTokens: boolean): Promise<string> {
    return this.submit((id) => ({ id, op: 'decode', ids, skipSpecialTokens }), {}).then((r) => r.text!);
  }

  /** Renders and tokenizes (without special tokens: the template wrote them). Throws ChatTemplateError or
   *  RenderedTooLong (a rendered text over `maxBytes` is not tokenized). */
  renderChat(
    messages: TemplateMessage[],
    options: RenderOptions,
    maxBytes: number,
    opts: JobOptions = {},
  ): Promise<{ text: string; ids: number[] }> {
    let chars = 0;
    for (const m of messages) chars += (m.content?.length ?? 0) + (m.name?.length ?? 0);
    return this.submit((id) => ({ id, op: 'chat', messages, options, maxBytes }), opts, chars).then((r) => ({
      text: r.text!,
      ids: r.ids,
    }));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.splice(0).map((t) => t.worker.terminate()));
  }

  /** `chars`: the job's text length, which decides whether it runs inline (none given: on a thread). */
  private submit(
    job: (id: number) => PoolJob,
    opts: JobOptions,
    chars = Number.POSITIVE_INFINITY,
  ): Promise<{ ids: number[]; text?: string }> {
    if (this.closed || this.threads.length === 0) return Promise.reject(new Error('the tokenizer pool is closed'));
    const id = this.nextId++;
    this.jobs++;
    if (this.inline && chars <= (opts.alone ? this.inline.aloneMaxChars : this.inline.maxChars)) {
      this.inlineJobs++;
      return new Promise((resolve, reject) => settle(runJob(job(id), this.inline!), { resolve, reject }));
    }
    const thread = this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    return new Promise((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.worker.postMessage(job(id));
    });
  }

  /** One more thread; resolves when it is ready. A thread that dies fails its jobs and is replaced. */
  private add(): Promise<void> {
    const worker = spawn(this.spec);
    worker.unref(); // never what keeps a process alive
    const thread: Thread = { worker, pending: new Map() };
    this.threads.push(thread);
    return new Promise((resolve, reject) => {
      worker.on('message', (m: PoolReply | { ready: boolean; message?: string }) => {
        if ('ready' in m) {
          if (m.ready) resolve();
          else reject(new Error(m.message));
          return;
        }
        const p = thread.pending.get(m.id);
        if (!p) return;
        thread.pending.delete(m.id);
        settle(m, p);
      });
      const die = (why: string) => {
        reject(new Error(why));
        const i = this.threads.indexOf(thread);
        if (i < 0) return;
        this.threads.splice(i, 1);
        for (const p of thread.pending.values()) p.reject(new Error(why));
        thread.pending.clear();
        if (!this.closed) this.add().catch(() => undefined);
      };
      worker.on('error', (e: Error) => die(`a tokenizer thread failed: ${e.message}`));
      worker.on('exit', (code) => die(`a tokenizer thread exited (${code})`));
    });
  }
}

/** A job's reply as its promise's outcome. */
function settle(m: PoolReply, p: Pending): void {
  if (!('error' in m)) p.resolve(m);
  else if (m.error.kind === 'template') p.reject(new ChatTemplateError(m.error.message));
  else if (m.error.kind === 'too_long') p.reject(new RenderedTooLong(m.error.bytes!));
  else p.reject(new Error(`tokenizer: ${m.error.message}`));
}
