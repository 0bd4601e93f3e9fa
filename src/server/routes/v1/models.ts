// GET /v1/models and GET /v1/models/:id — the one served model.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ServerContext } from '../../context.js';
import { ApiError } from '../../errors.js';

export const modelsRoute: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const card = () => ({
    id: ctx.servedModelName,
    object: 'model',
    created: ctx.slot.created,
    owned_by: 'kvserve',
    root: ctx.servedModelName,
    parent: null,
    // Known once the engine is up; null while the model loads.
    max_model_len: ctx.slot.loaded?.maxModelLen ?? null,
  });

  app.get('/v1/models', async () => ({ object: 'list', data: [card()] }));

  app.get('/v1/models/:id', { schema: { params: Type.Object({ id: Type.String() }) } }, async (req) => {
    if (req.params.id !== ctx.servedModelName) {
      throw new ApiError('model_not_found', `The model \`${req.params.id}\` does not exist`, 'model');
    }
    return card();
  });
};
