// Tokenizing prompts and rendering chat templates off the event loop. Both cost time superlinear in the
// text (a pure-JS BPE over a long word, a template over thousands of messages): on the main thread one
// large prompt would stall /health and every stream for seconds. A few worker threads, each holding its
// own copy of the tokenizer and template, take those jobs; the main thread keeps only the cheap per-token
// work (incremental detokenization of outputs, logprob token texts).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ChatTemplateError, type RenderOptions, type TemplateMessage } from './chat-template.js';

/** What a worker needs to load the same tokenizer and template as the main thread. */
export interface TokenizerSpec {
  dir: string;
  dummy: boolean; // --load-format dummy: a synthetic tokenizer when the folder has none
  configPath: string;
  chatTemplate?: string; // the template source, already known to parse
}

export type PoolJob =
  | { id: number; op: 'encode'; text: string; addSpecialTokens: boolean }
  | { id: number; op: 'decode'; ids: number[]; skipSpecialTokens: boolean }
  | { id: number; op: 'chat'; messages: TemplateMessage[]; options: RenderOptions; maxBytes: number };

export type PoolReply =
  | { id: number; ids: number[]; text?: string }
  | { id: number; error: { kind: 'template' | 'too_long' | 'internal'; message: string; bytes?: number } };

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

  private constructor(private readonly spec: TokenizerSpec) {}

  /** Starts `size` threads and resolves once every one has loaded the tokenizer (rejects if one cannot). */
  static async start(spec: TokenizerSpec, size: number): Promise<TokenizerPool> {
    const pool = new TokenizerPool(spec);
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

  encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    return this.submit((id) => ({ id, op: 'encode', text, addSpecialTokens })).then((r) => r.ids);
  }

  /** For whole token lists a client sends (/detokenize); outputs are detokenized incrementally, on the loop. */
  decode(ids: number[], skipSpecialTokens: boolean): Promise<string> {
    return this.submit((id) => ({ id, op: 'decode', ids, skipSpecialTokens })).then((r) => r.text!);
  }

  /** Renders and tokenizes (without special tokens: the template wrote them). Throws ChatTemplateError or
   *  RenderedTooLong (a rendered text over `maxBytes` is not tokenized). */
  renderChat(
    messages: TemplateMessage[],
    options: RenderOptions,
    maxBytes: number,
  ): Promise<{ text: string; ids: number[] }> {
    return this.submit((id) => ({ id, op: 'chat', messages, options, maxBytes })).then((r) => ({
      text: r.text!,
      ids: r.ids,
    }));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.splice(0).map((t) => t.worker.terminate()));
  }

  private submit(job: (id: number) => PoolJob): Promise<{ ids: number[]; text?: string }> {
    if (this.closed || this.threads.length === 0) return Promise.reject(new Error('the tokenizer pool is closed'));
    const thread = this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    this.jobs++;
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
        if (!('error' in m)) p.resolve(m);
        else if (m.error.kind === 'template') p.reject(new ChatTemplateError(m.error.message));
        else if (m.error.kind === 'too_long') p.reject(new RenderedTooLong(m.error.bytes!));
        else p.reject(new Error(`tokenizer: ${m.error.message}`));
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
