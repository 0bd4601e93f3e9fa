// GET /health: 503 while the model loads (with the loading stage), 200 once it serves. No auth.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ServerContext } from '../context.js';

export const healthRoute: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  app.get('/health', async (_req, reply) => {
    if (!ctx.slot.loaded) {
      reply.code(503).header('retry-after', '5');
      return { status: 'loading', stage: ctx.slot.stage, progress: ctx.slot.fraction };
    }
    return { status: 'ok' };
  });
};
