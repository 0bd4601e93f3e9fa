// POST /v1/chat/completions, streamed and not, in OpenAI's exact response shapes.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { admit } from '../../admission.js';
import { tokenizeBadWords } from '../../bad-words.js';
import { checkChatMessages, renderChatPrompt } from '../../chat-prompt.js';
import {
  acquireModel,
  alone,
  newRequestId,
  startGeneration,
  streamGeneration,
  usageOf,
  type ServerContext,
} from '../../context.js';
import { invalid, unsupported } from '../../errors.js';
import type { LogprobEntry } from '../../generation.js';
import { tokenLogprobs } from '../../token-text.js';
import { expandChoices, parseSettings } from '../../sampling.js';
import { ChatCompletionRequest } from '../../schemas/chat.js';
import { attachConstraints, startGrammar, structuredSpec } from '../../structured-outputs.js';
import { ChatTools, type ChatDelta } from '../../tools/chat-tools.js';
import { toolRequest } from '../../tools/tool-request.js';

/** OpenAI's chat logprobs: one entry per token, with its alternatives. */
const chatLogprobs = (entries: LogprobEntry[], asTokenIds: boolean) => ({
  content: tokenLogprobs(entries, asTokenIds),
  refusal: null,
});

export const chatCompletionsRoute: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  app.post('/v1/chat/completions', { schema: { body: ChatCompletionRequest } }, async (req, reply) => {
    const arrival = req.arrivalTime;
    const body = req.body;
    const model = acquireModel(ctx, body.model, reply);
    if (body.echo === true) throw unsupported('echo', 'echo on chat completions');
    if (body.add_special_tokens === true)
      throw unsupported(
        'add_special_tokens',
        'add_special_tokens on chat (the chat template writes the special tokens)',
      );
    if (body.top_logprobs !== undefined && body.top_logprobs !== null && !body.logprobs) {
      throw invalid('top_logprobs needs logprobs to be true', 'top_logprobs');
    }
    const useCompletionTokens = body.max_completion_tokens !== undefined && body.max_completion_tokens !== null;
    const settings = parseSettings(body, {
      maxTokens: useCompletionTokens ? body.max_completion_tokens : body.max_tokens,
      maxTokensParam: useCompletionTokens ? 'max_completion_tokens' : 'max_tokens',
      logprobs: body.logprobs ? (body.top_logprobs ?? 0) : null,
      vocabSize: model.vocabSize,
    });
    const structured = structuredSpec(body);
    let toolReq = toolRequest(body.tools, body.tool_choice, body.parallel_tool_calls);
    if (structured && toolReq && toolReq.choice !== 'auto')
      throw invalid(`${structured.param} cannot be combined with a tool_choice that forces a call`, structured.param);
    // With an output format and tool_choice auto, the format decides the reply: it can hold no call.
    if (structured) toolReq = undefined;
    const tools = new ChatTools(model, toolReq);
    const callGrammar = tools.grammar();
    if (tools.keepsSpecialTokens) settings.text.skipSpecialTokens = false;
    // Compiling starts now and overlaps rendering and tokenizing the prompt.
    const grammar = structured
      ? startGrammar(model, structured.spec, structured.param)
      : callGrammar && startGrammar(model, callGrammar, 'tools');
    settings.sampling.badWords = await tokenizeBadWords(model, body.bad_words);
    checkChatMessages(model, body.messages); // what can never fit is a 400 before it takes a place in the queue
    const admission = admit(ctx, model, reply, 1, settings.n, 'messages');
    const prompt = await renderChatPrompt(model, body.messages, body, tools, { alone: alone(ctx) });
    const choices = expandChoices([prompt.ids], settings, model.maxModelLen, 'messages');
    await attachConstraints(choices, grammar);
    const id = newRequestId('chatcmpl-', body.request_id);
    const created = Math.floor(Date.now() / 1000);
    const gen = startGeneration(ctx, model, reply, id, choices, settings.text, arrival, admission);
    const wantLogprobs = settings.sampling.logprobs !== null;
    const asTokenIds = body.return_tokens_as_token_ids ?? false;

    if (!settings.stream) {
      const results = await gen.run();
      return {
        id,
        object: 'chat.completion',
        created,
        model: model.name,
        choices: results.map((r, index) => {
          const { content, tool_calls, finish } = tools.message(r);
          return {
            index,
            message: { role: 'assistant', content, refusal: null, ...(tool_calls ? { tool_calls } : {}) },
            logprobs: wantLogprobs ? chatLogprobs(r.logprobs, asTokenIds) : null,
            finish_reason: finish,
            stop_reason: r.stopReason,
          };
        }),
        usage: usageOf(results, settings.n),
      };
    }

    const base = { id, object: 'chat.completion.chunk', created, model: model.name };
    // Each choice opens with a chunk of its role alone, as OpenAI and vLLM send it: a role that rode on the
    // first token's chunk would make the client's stream helper count that token's logprobs twice.
    const lead = choices.map((_, index) => ({
      index,
      delta: { role: 'assistant', content: '' },
      logprobs: null,
      finish_reason: null,
    }));
    const chunk = (index: number, delta: ChatDelta | Record<string, never>, logprobs: LogprobEntry[] | null) => ({
      index,
      delta,
      logprobs: wantLogprobs && logprobs ? chatLogprobs(logprobs, asTokenIds) : null,
      finish_reason: null,
    });
    if (!tools.request) {
      return streamGeneration(
        reply,
        gen,
        settings,
        base,
        {
          delta: (index, d) => chunk(index, { content: d.text }, d.logprobs),
          finish: (index, r) => ({
            index,
            delta: {},
            logprobs: null,
            finish_reason: r.finishReason,
            stop_reason: r.stopReason,
          }),
        },
        lead,
      );
    }
    // With tools, text may be held back (the start of a call marker) or become tool_calls deltas; the logprobs
    // of held-back tokens ride on the next chunk.
    const streamers = choices.map(() => tools.streamer());
    const heldLogprobs: LogprobEntry[][] = choices.map(() => []);
    const withLogprobs = (index: number, deltas: ChatDelta[], logprobs: LogprobEntry[]) => {
      heldLogprobs[index]!.push(...logprobs);
      return deltas.map((d, k) => chunk(index, d, k === 0 ? heldLogprobs[index]!.splice(0) : null));
    };
    return streamGeneration(
      reply,
      gen,
      settings,
      base,
      {
        delta: (index, d) => withLogprobs(index, streamers[index]!.push(d.text), d.logprobs),
        finish: (index, r) => {
          const { deltas, finish } = streamers[index]!.finish(r);
          return [
            ...withLogprobs(index, deltas, []),
            { index, delta: {}, logprobs: null, finish_reason: finish, stop_reason: r.stopReason },
          ];
        },
      },
      lead,
    );
  });
};
