// GET /v1/models and GET /v1/models/:id — the served models (a model still loading is listed too).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ServerContext } from '../../context.js';
import type { ModelSlot } from '../../model-slot.js';

export const modelsRoute: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const card = (slot: ModelSlot) => ({
    id: slot.name,
    object: 'model',
    created: slot.created,
    owned_by: 'kvserve',
    root: slot.name,
    parent: null,
    // Known once the engine is up; null while the model loads.
    max_model_len: slot.loaded?.maxModelLen ?? null,
  });

  app.get('/v1/models', async () => ({ object: 'list', data: ctx.models.slots().map(card) }));

  app.get('/v1/models/:id', { schema: { params: Type.Object({ id: Type.String() }) } }, async (req) =>
    card(ctx.models.route(req.params.id)),
  );
};
