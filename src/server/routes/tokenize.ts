// POST /tokenize and POST /detokenize, in vLLM's shapes. /tokenize takes a prompt or chat messages (the
// latter rendered through the chat template exactly as /v1/chat/completions would).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { renderChatPrompt } from '../chat-prompt.js';
import { acquireModel, type ServerContext } from '../context.js';
import { ApiError, invalid } from '../errors.js';
import { checkPromptBytes } from '../prompt-size.js';
import {
  DetokenizeRequest,
  type DetokenizeResponse,
  TokenizeRequest,
  type TokenizeResponse,
} from '../schemas/tokenize.js';

export const tokenizeRoutes: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  app.post('/tokenize', { schema: { body: TokenizeRequest } }, async (req, reply): Promise<TokenizeResponse> => {
    const body = req.body;
    const model = acquireModel(ctx, body.model, reply);
    let tokens: number[];
    if (body.messages !== undefined) {
      if (body.prompt !== undefined) throw invalid('give either prompt or messages, not both', 'prompt');
      tokens = (await renderChatPrompt(model, body.messages, body)).ids;
    } else if (body.prompt !== undefined) {
      checkPromptBytes(model, body.prompt, 'prompt');
      tokens = await model.prompts.encode(body.prompt, body.add_special_tokens ?? true);
    } else {
      throw new ApiError('missing_required_parameter', 'give a prompt or messages', 'prompt');
    }
    return { count: tokens.length, max_model_len: model.maxModelLen, tokens };
  });

  app.post('/detokenize', { schema: { body: DetokenizeRequest } }, async (req, reply): Promise<DetokenizeResponse> => {
    const model = acquireModel(ctx, req.body.model, reply);
    const bad = req.body.tokens.find((id) => id >= model.vocabSize);
    if (bad !== undefined)
      throw invalid(`token id ${bad} is out of range (vocabulary size ${model.vocabSize})`, 'tokens');
    return { prompt: await model.prompts.decode(req.body.tokens, false) };
  });
};
