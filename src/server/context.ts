// What every generation route shares: the model check, load shedding, submitting the engine work and
// tying its life to the HTTP connection, the stream's chunk sequence, and usage accounting.
import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { ServerMetrics } from '../metrics/metrics.js';
import type { Admission } from './admission.js';
import type { Drain } from './drain.js';
import { toApiError } from './errors.js';
import { Generation, type ChoiceDelta, type ChoiceResult, type ChoiceSpec, type TextOptions } from './generation.js';
import type { ModelRegistry } from './model-registry.js';
import type { ModelSlot, ServedModel } from './model-slot.js';
import type { RequestSettings } from './sampling.js';
import { SseWriter } from './sse.js';

export interface ServerContext {
  /** The served models by name (each with its own queue and limits), routed by a request's `model`. */
  models: ModelRegistry;
  /** The model that requests naming none get: the first one served. */
  readonly slot: ModelSlot;
  readonly servedModelName: string;
  metrics: ServerMetrics;
  /** HTTP requests whose response has not finished (streams included); graceful close waits on it. */
  inflight: number;
  drain: Drain;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/** Whether the request asking is the only one in flight on the server (every route counts in `inflight`). */
export const alone = (ctx: ServerContext) => ctx.inflight === 1;

/** `prefix<random>`, or `prefix<given>` for vLLM's request_id field (the caller's own id, for tracing). */
export const newRequestId = (prefix: string, given?: string | null) =>
  `${prefix}${given || randomUUID().replaceAll('-', '')}`;

/** A request naming a model that is not served is a 404, as OpenAI answers; no model field means the first. */
export function checkModelName(ctx: ServerContext, model: string | null | undefined): void {
  ctx.models.route(model);
}

/**
 * The model a request names, held for it until its reply closes (a switched or unloaded model finishes the
 * requests that hold it); a 404 when no such model is served, a 503 with Retry-After while it loads or restarts.
 */
export function acquireModel(ctx: ServerContext, model: string | null | undefined, reply: FastifyReply): ServedModel {
  return ctx.models.route(model).acquire(reply);
}

/**
 * Submits the choices and aborts them all if the client goes away before the reply is complete
 * (a disconnect mid-stream, or a non-streaming client that gave up), so their KV blocks are freed.
 */
export function startGeneration(
  ctx: ServerContext,
  model: ServedModel,
  reply: FastifyReply,
  requestId: string,
  choices: ChoiceSpec[],
  text: TextOptions,
  arrival: number,
  admission: Admission,
): Generation {
  let gen: Generation;
  try {
    ctx.drain.check(); // a drain that began while this request was tokenized refuses it here
    model.instance.check(); // so does a model cut since (switched or unloaded past the grace, or failed)
    gen = new Generation(
      { client: model.client, tokenizer: model.tokenizer, metrics: ctx.metrics.forModel(model.name) },
      requestId,
      choices,
      text,
      arrival,
    );
  } finally {
    admission.release(); // submitted: the engine counts these sequences as waiting from now on
  }
  // The HTTP request id (X-Request-Id) and the completion id on one line: a client's error leads here.
  reply.log.info({ completionId: requestId, choices: choices.length }, 'generation started');
  ctx.drain.generations.add(gen);
  model.instance.generations.add(gen);
  reply.raw.once('close', () => {
    ctx.drain.generations.delete(gen);
    model.instance.generations.delete(gen);
    if (!gen.done) gen.abortAll();
  });
  return gen;
}

/** A route's shape of one stream chunk's choice, for a choice's new text and for its end. A list is that many
 *  chunks (none: the text is held back, as a tool call's marker may be). */
export interface ChunkChoices {
  delta(index: number, d: ChoiceDelta): object | object[];
  finish(index: number, r: ChoiceResult): object | object[];
}

/**
 * Streams a generation: the `lead` choices (e.g. roles, echoed prompts), one chunk per delta and per finish,
 * the usage chunk when include_usage asked for it (every other chunk then carries `usage: null`, or the usage
 * so far with continuous_usage_stats), an error event if the engine failed mid-way (the status is already
 * 200), and [DONE].
 */
export async function streamGeneration(
  reply: FastifyReply,
  gen: Generation,
  settings: RequestSettings,
  base: object,
  choices: ChunkChoices,
  lead: object[] = [],
): Promise<FastifyReply> {
  const sse = new SseWriter(reply);
  const counts: Array<ChoiceDelta['counts'] | undefined> = [];
  const usageNow = () =>
    usageOf(
      Array.from(counts, (c) => c ?? { numPromptTokens: 0, numCachedTokens: 0, numOutputTokens: 0 }),
      settings.n,
    );
  const usage = () => (settings.continuousUsage ? { usage: usageNow() } : settings.includeUsage ? { usage: null } : {});
  const send = (choice: object) => sse.send({ ...base, choices: [choice], ...usage() });
  lead.forEach(send);
  try {
    const results = await gen.run({
      delta: (index, d) => {
        counts[index] = d.counts;
        for (const c of [choices.delta(index, d)].flat()) send(c);
      },
      finish: (index, r) => {
        counts[index] = r;
        for (const c of [choices.finish(index, r)].flat()) send(c);
      },
      writable: () => sse.writable(),
    });
    if (settings.includeUsage) sse.send({ ...base, choices: [], usage: usageOf(results, settings.n) });
  } catch (e) {
    const api = toApiError(e, reply.request.id);
    if (!sse.closed) {
      if (api.status >= 500 && api.code !== 'server_shutting_down')
        reply.log.error({ err: e }, 'generation failed mid-stream');
      sse.error(api);
    }
  }
  sse.done();
  return reply;
}

/** Prompt tokens count once per prompt (not once per choice), as OpenAI counts them with n > 1. */
export function usageOf(
  results: Array<Pick<ChoiceResult, 'numPromptTokens' | 'numCachedTokens' | 'numOutputTokens'>>,
  n: number,
): Usage {
  let prompt = 0;
  let cached = 0;
  let completion = 0;
  results.forEach((r, i) => {
    if (i % n === 0) {
      prompt += r.numPromptTokens;
      cached += r.numCachedTokens;
    }
    completion += r.numOutputTokens;
  });
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached },
  };
}
