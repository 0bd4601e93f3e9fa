// One job of the tokenizer pool and how it is done: the same code on a pool thread (tokenizer-worker.ts) and,
// for short texts, on the event loop itself (tokenizer-pool.ts), so both give the same answers and errors.
import { ChatTemplate, ChatTemplateError, type RenderOptions, type TemplateMessage } from './chat-template.js';
import type { TextTokenizer } from './tokenizer.js';

export type PoolJob =
  | { id: number; op: 'encode'; text: string; addSpecialTokens: boolean }
  | { id: number; op: 'decode'; ids: number[]; skipSpecialTokens: boolean }
  | { id: number; op: 'chat'; messages: TemplateMessage[]; options: RenderOptions; maxBytes: number };

export type PoolReply =
  | { id: number; ids: number[]; text?: string }
  | { id: number; error: { kind: 'template' | 'too_long' | 'internal'; message: string; bytes?: number } };

/** What a job runs with: a model's tokenizer and its chat template (if it has one). */
export interface JobTools {
  tokenizer: TextTokenizer;
  template: ChatTemplate | undefined;
}

/** Does `job`; a failure of the tokenizer or template is an error reply, never a throw. */
export function runJob(job: PoolJob, tools: JobTools): PoolReply {
  try {
    return run(job, tools);
  } catch (e) {
    return { id: job.id, error: { kind: 'internal', message: e instanceof Error ? e.message : String(e) } };
  }
}

function run(job: PoolJob, { tokenizer, template }: JobTools): PoolReply {
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

/** The chat template of a pool thread: the main thread's source, with the thread's own tokenizer's specials. */
export function templateOf(source: string | undefined, tokenizer: TextTokenizer): ChatTemplate | undefined {
  return source === undefined ? undefined : new ChatTemplate(source, tokenizer.specialTokens);
}
