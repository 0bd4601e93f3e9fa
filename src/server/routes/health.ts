// GET /health: 503 while the model loads (with the loading stage) and while draining (so a load balancer
// stops sending), 200 while it serves. No auth.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ServerContext } from '../context.js';

export const healthRoute: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  app.get('/health', async (_req, reply) => {
    if (ctx.drain.draining) {
      reply.code(503).header('retry-after', String(ctx.drain.retryAfter()));
      return { status: 'draining' };
    }
    if (!ctx.slot.loaded) {
      reply.code(503).header('retry-after', '5');
      return { status: 'loading', stage: ctx.slot.stage, progress: ctx.slot.fraction };
    }
    return { status: 'ok' };
  });
};
