// GET /health: 503 while the model loads (with the loading stage) and while draining (so a load balancer
// stops sending), 200 while it serves. GET and POST /ping answer the same (vLLM's and SageMaker's probe);
// GET /version names the kvserve release. No auth.
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { ServerContext } from '../context.js';

// package.json sits three levels above both src/server/routes/ and dist/server/routes/.
const VERSION: string = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;

export const healthRoute: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const health = async (_req: unknown, reply: FastifyReply) => {
    if (ctx.drain.draining) {
      reply.code(503).header('retry-after', String(ctx.drain.retryAfter()));
      return { status: 'draining' };
    }
    if (!ctx.slot.loaded) {
      reply.code(503).header('retry-after', '5');
      return { status: 'loading', stage: ctx.slot.stage, progress: ctx.slot.fraction };
    }
    return { status: 'ok' };
  };
  app.get('/health', health);
  app.route({ method: ['GET', 'POST'], url: '/ping', handler: health });
  app.get('/version', async () => ({ version: VERSION }));
};
