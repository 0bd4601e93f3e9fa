// POST /v1/completions (legacy text completions), streamed and not. A batch of prompts gives n choices
// per prompt, indexed prompt-major (index = prompt * n + i), as OpenAI and vLLM do.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { admit } from '../../admission.js';
import {
  acquireModel,
  alone,
  newRequestId,
  startGeneration,
  streamGeneration,
  usageOf,
  type ServerContext,
} from '../../context.js';
import { ApiError, invalid, unsupported } from '../../errors.js';
import type { LogprobEntry } from '../../generation.js';
import type { LoadedModel } from '../../model-slot.js';
import { tokenizeBadWords } from '../../bad-words.js';
import { checkPromptBytes } from '../../prompt-size.js';
import { legacyTokenName } from '../../token-text.js';
import { expandChoices, parseSettings } from '../../sampling.js';
import { CompletionRequest } from '../../schemas/completions.js';
import { attachConstraints, startGrammar, structuredSpec } from '../../structured-outputs.js';

const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

/** How many prompts the field holds, from its shape alone (nothing is tokenized yet). */
function numPrompts(prompt: CompletionRequest['prompt']): number {
  return typeof prompt === 'string' || typeof prompt[0] === 'number' ? 1 : prompt.length;
}

/**
 * Every prompt as token ids (strings get the tokenizer's special tokens), with the text that echo puts
 * before its choices ('' without echo, so a token-id prompt is only decoded when echo asks for it).
 * Sizes are checked first, for every prompt, so that nothing is tokenized or decoded for a request
 * that is refused; strings are tokenized on the pool's threads.
 */
function checkPrompts(
  model: LoadedModel,
  prompt: CompletionRequest['prompt'],
  truncating: boolean,
): Array<string | number[]> {
  const list: Array<string | number[]> =
    typeof prompt === 'string'
      ? [prompt]
      : typeof prompt[0] === 'number'
        ? [prompt as number[]]
        : (prompt as Array<string | number[]>);
  const param = (i: number) => (list.length > 1 ? `prompt[${i}]` : 'prompt');
  list.forEach((p, i) => {
    if (typeof p === 'string') {
      checkPromptBytes(model, p, param(i));
      return;
    }
    const bad = p.find((id) => id >= model.vocabSize);
    if (bad !== undefined)
      throw invalid(`token id ${bad} is out of range (vocabulary size ${model.vocabSize})`, param(i));
    if (p.length >= model.maxModelLen && !truncating) throw promptTooLongInTokens(model, p.length, param(i));
  });
  return list;
}

async function promptsOf(
  model: LoadedModel,
  list: Array<string | number[]>,
  echo: boolean,
  addSpecial: boolean,
  alone: boolean,
): Promise<Array<{ ids: number[]; echoed: string }>> {
  // Only a lone prompt is a lone job: a batch's texts would each take the loop in turn.
  const opts = { alone: alone && list.length === 1 };
  return Promise.all(
    list.map(async (p) => {
      if (typeof p === 'string') return { ids: await model.prompts.encode(p, addSpecial, opts), echoed: echo ? p : '' };
      return { ids: p, echoed: echo ? model.tokenizer.decode(p, true) : '' };
    }),
  );
}

/** A token-id prompt with no room left for one generated token. */
function promptTooLongInTokens(model: LoadedModel, n: number, param: string): ApiError {
  return new ApiError(
    'context_length_exceeded',
    `This model's maximum context length is ${model.maxModelLen} tokens. However, the prompt has ${n} tokens. Please reduce the length of the prompt.`,
    param,
  );
}

/**
 * OpenAI's legacy logprobs of one choice, chunk by chunk. `text_offset` counts from the start of the
 * choice's text (echo included) and carries on across the chunks of a stream.
 */
class LegacyLogprobs {
  constructor(
    private nextOffset: number,
    private readonly asTokenIds: boolean,
  ) {}

  /** `{tokens, token_logprobs, top_logprobs, text_offset}` of the entries that follow those taken so far. */
  take(entries: LogprobEntry[]) {
    const lp = {
      tokens: [] as string[],
      token_logprobs: [] as number[],
      top_logprobs: [] as Array<Record<string, number>>,
      text_offset: [] as number[],
    };
    for (const e of entries) {
      const name = legacyTokenName(e.token, this.asTokenIds);
      lp.tokens.push(name);
      lp.token_logprobs.push(e.logprob);
      // The sampled token is always listed, so there may be logprobs + 1 entries (as OpenAI documents).
      const top: Record<string, number> = {};
      for (const t of e.top) top[legacyTokenName(t.token, this.asTokenIds)] = t.logprob;
      top[name] = e.logprob;
      lp.top_logprobs.push(top);
      lp.text_offset.push(this.nextOffset);
      this.nextOffset += e.token.token.length;
    }
    return lp;
  }
}

export const completionsRoute: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  app.post('/v1/completions', { schema: { body: CompletionRequest } }, async (req, reply) => {
    const arrival = req.arrivalTime;
    const body = req.body;
    const model = acquireModel(ctx, body.model, reply);
    const echo = body.echo ?? false;
    const logprobs = body.logprobs ?? null;
    if (echo && logprobs !== null) throw unsupported('echo', 'echo together with logprobs (prompt logprobs)');
    // OpenAI's spec: max_tokens defaults to 16 here (chat's default is everything that fits).
    const settings = parseSettings(body, {
      maxTokens: body.max_tokens,
      maxTokensParam: 'max_tokens',
      logprobs,
      vocabSize: model.vocabSize,
      defaultMaxTokens: COMPLETIONS_DEFAULT_MAX_TOKENS,
    });
    // What can never fit is a 400 before it takes a place in the queue; then admission; then tokenization.
    const structured = structuredSpec(body);
    const grammar = structured && startGrammar(model, structured.spec, structured.param);
    settings.sampling.badWords = await tokenizeBadWords(model, body.bad_words);
    const list = checkPrompts(model, body.prompt, settings.truncatePromptTokens !== undefined);
    const admission = admit(ctx, model, reply, numPrompts(body.prompt), settings.n, 'prompt');
    const prompts = await promptsOf(model, list, echo, body.add_special_tokens ?? true, alone(ctx));
    const choices = expandChoices(
      prompts.map((p) => p.ids),
      settings,
      model.maxModelLen,
      'prompt',
    );
    await attachConstraints(choices, grammar);
    const prefixes = choices.map((_, i) => prompts[Math.floor(i / settings.n)]!.echoed);
    const id = newRequestId('cmpl-', body.request_id);
    const created = Math.floor(Date.now() / 1000);
    const gen = startGeneration(ctx, model, reply, id, choices, settings.text, arrival, admission);
    const base = { id, object: 'text_completion', created, model: model.name };
    const asTokenIds = body.return_tokens_as_token_ids ?? false;

    if (!settings.stream) {
      const results = await gen.run();
      return {
        ...base,
        choices: results.map((r, index) => ({
          index,
          text: prefixes[index] + r.text,
          logprobs: logprobs === null ? null : new LegacyLogprobs(prefixes[index]!.length, asTokenIds).take(r.logprobs),
          finish_reason: r.finishReason,
          stop_reason: r.stopReason,
        })),
        usage: usageOf(results, settings.n),
      };
    }

    const legacy = logprobs === null ? undefined : prefixes.map((p) => new LegacyLogprobs(p.length, asTokenIds));
    const choice = (
      index: number,
      text: string,
      lp: unknown,
      finish: string | null,
      stopReason: string | number | null = null,
    ) => ({ index, text, logprobs: lp, finish_reason: finish, stop_reason: stopReason });
    const echoed = prefixes.flatMap((p, index) => (p ? [choice(index, p, null, null)] : []));
    return streamGeneration(
      reply,
      gen,
      settings,
      base,
      {
        delta: (index, d) => choice(index, d.text, legacy ? legacy[index]!.take(d.logprobs) : null, null),
        finish: (index, r) => choice(index, '', null, r.finishReason, r.stopReason),
      },
      echoed,
    );
  });
};
