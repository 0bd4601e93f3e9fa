// POST /v1/responses, streamed and not: text input (a string, or message items of input_text parts) with
// optional instructions, one text output message. kvserve keeps no state, so store: true and
// previous_response_id are refused with a 400 that says so.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { admit } from '../../admission.js';
import { checkChatMessages, renderChatPrompt } from '../../chat-prompt.js';
import { acquireModel, alone, newRequestId, startGeneration, type ServerContext } from '../../context.js';
import { ApiError, invalid, toApiError, unsupported } from '../../errors.js';
import {
  finalStatus,
  outputMessage,
  responseObject,
  ResponseEvents,
  type ResponseEcho,
} from '../../response-object.js';
import { expandChoices, parseSettings } from '../../sampling.js';
import { attachConstraints, responseFormatSpec, startGrammar } from '../../structured-outputs.js';
import type { ChatMessage } from '../../schemas/chat.js';
import { ResponsesRequest } from '../../schemas/responses.js';
import { SseWriter } from '../../sse.js';

const LOGPROBS = 'message.output_text.logprobs';
const isSet = (v: unknown) => v !== undefined && v !== null;
const isEmpty = (v: unknown) => !isSet(v) || (Array.isArray(v) && v.length === 0);

/** Every field whose non-default value asks for something kvserve does not do: a 400 naming it. */
function rejectUnsupported(body: ResponsesRequest): void {
  if (body.store === true) {
    throw new ApiError(
      'unsupported_parameter',
      'kvserve stores no responses: send store: false (or leave store out)',
      'store',
    );
  }
  if (isSet(body.previous_response_id)) {
    throw new ApiError(
      'unsupported_parameter',
      'kvserve stores no responses, so none can be continued: send the whole conversation as input',
      'previous_response_id',
    );
  }
  if (isSet(body.conversation))
    throw new ApiError(
      'unsupported_parameter',
      'kvserve stores no conversations: send the whole conversation as input',
      'conversation',
    );
  if (body.background === true) throw unsupported('background', 'background responses');
  if (isSet(body.prompt)) throw unsupported('prompt', 'prompt templates (prompt)');
  if (!isEmpty(body.tools)) throw unsupported('tools', 'tool calling (tools)');
  if (isSet(body.tool_choice) && body.tool_choice !== 'none' && body.tool_choice !== 'auto')
    throw unsupported('tool_choice', 'tool_choice');
  const effort = (body.reasoning as { effort?: unknown } | null | undefined)?.effort;
  if (isSet(effort)) throw unsupported('reasoning.effort', 'reasoning effort');
  const other = (body.include ?? []).find((what) => what !== LOGPROBS);
  if (other !== undefined) throw unsupported('include', `include "${other}"`);
  if (isSet(body.truncation) && body.truncation !== 'disabled')
    throw unsupported('truncation', `truncation "${body.truncation}"`);
}

/** Logprobs come with include: ["message.output_text.logprobs"] (or top_logprobs > 0), top_logprobs deep. */
function logprobsOf(body: ResponsesRequest): number | null {
  const top = body.top_logprobs ?? 0;
  return body.include?.includes(LOGPROBS) || top > 0 ? top : null;
}

/** instructions first (as a system message), then the input: a string is one user message. */
function messagesOf(body: ResponsesRequest): ChatMessage[] {
  // ChatMessage's role type comes out of TypeBox as never (a mapped union); these are its literal values.
  const message = (role: string, content: ChatMessage['content']) => ({ role, content }) as ChatMessage;
  const messages: ChatMessage[] = body.instructions ? [message('system', body.instructions)] : [];
  if (typeof body.input === 'string') return [...messages, message('user', body.input)];
  for (const [i, item] of body.input.entries()) {
    const type = item.type ?? 'message';
    if (type !== 'message') throw unsupported(`input[${i}].type`, `input items of type "${type}"`);
    if (!item.role)
      throw new ApiError('missing_required_parameter', `input[${i}]: a message needs a role`, `input[${i}].role`);
    if (item.content === undefined)
      throw new ApiError('missing_required_parameter', `input[${i}]: a message needs content`, `input[${i}].content`);
    if (typeof item.content === 'string') {
      messages.push(message(item.role, item.content));
      continue;
    }
    const parts = item.content.map((part, j) => {
      const param = `input[${i}].content[${j}]`;
      if (part.type !== 'input_text' && part.type !== 'output_text')
        throw unsupported(`${param}.type`, `content parts of type "${part.type}"`);
      if (typeof part.text !== 'string')
        throw new ApiError('missing_required_parameter', `${param} needs a "text" string`, `${param}.text`);
      return { type: 'text', text: part.text };
    });
    messages.push(message(item.role, parts));
  }
  return messages;
}

export const responsesRoute: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  app.post('/v1/responses', { schema: { body: ResponsesRequest } }, async (req, reply) => {
    const arrival = req.arrivalTime;
    const body = req.body;
    const model = acquireModel(ctx, body.model, reply);
    rejectUnsupported(body);
    const settings = parseSettings(
      {
        temperature: body.temperature,
        top_p: body.top_p,
        seed: body.seed,
        top_k: body.top_k,
        min_p: body.min_p,
        repetition_penalty: body.repetition_penalty,
        stream: body.stream,
      },
      {
        maxTokens: body.max_output_tokens,
        maxTokensParam: 'max_output_tokens',
        logprobs: logprobsOf(body),
        vocabSize: model.vocabSize,
      },
    );
    const format = (body.text as { format?: unknown } | null | undefined)?.format;
    const spec = responseFormatSpec(format, 'text.format', true);
    const grammar = spec && startGrammar(model, spec, 'text.format');
    const messages = messagesOf(body);
    if (messages.length === 0) throw invalid('input has no messages', 'input');
    checkChatMessages(model, messages);
    const admission = admit(ctx, model, reply, 1, 1, 'input');
    const prompt = await renderChatPrompt(model, messages, {}, undefined, { alone: alone(ctx) });
    const choices = expandChoices([prompt.ids], settings, model.maxModelLen, 'input');
    await attachConstraints(choices, grammar);
    const echo: ResponseEcho = {
      id: newRequestId('resp_', body.request_id),
      model: model.name,
      createdAt: Math.floor(Date.now() / 1000),
      instructions: body.instructions ?? null,
      maxOutputTokens: body.max_output_tokens ?? null,
      temperature: settings.sampling.temperature,
      topP: settings.sampling.topP,
      metadata: body.metadata ?? {},
      user: body.user ?? null,
      ...(spec ? { textFormat: format as object } : {}),
    };
    const messageId = newRequestId('msg_');
    const gen = startGeneration(ctx, model, reply, echo.id, choices, settings.text, arrival, admission);

    if (!settings.stream) {
      const [result] = await gen.run();
      const status = finalStatus(result!);
      return responseObject(echo, status, [outputMessage(messageId, status, result!.text, result!.logprobs)], result);
    }

    const sse = new SseWriter(reply);
    const events = new ResponseEvents(sse, echo, messageId);
    events.start();
    try {
      await gen.run({
        delta: (_index, d) => events.delta(d.text, d.logprobs),
        finish: (_index, r) => events.finish(r),
        writable: () => sse.writable(),
      });
    } catch (e) {
      const api = toApiError(e, reply.request.id);
      if (!sse.closed) {
        if (api.status >= 500 && api.code !== 'server_shutting_down')
          reply.log.error({ err: e }, 'generation failed mid-stream');
        events.error(api);
      }
    }
    sse.end();
    return reply;
  });
};
