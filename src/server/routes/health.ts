// GET /health, the readiness probe: 503 while no model serves yet (with the loading stage) and while draining
// (so a load balancer stops sending), 200 while the models serve: `ok` when all do, `degraded` when some are
// loading, restarting or failed (they answer 503 themselves). `models` has each one's state. GET and POST /ping
// answer the same (vLLM's and SageMaker's probe). GET /livez, the liveness probe: 200 while the process serves,
// draining included; 503 once a model's engine kept failing past --max-restarts (a new process may cure what a
// restart in this one did not, e.g. a CUDA context that a fault left unusable). GET /version names the kvserve
// release. No auth.
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { ServerContext } from '../context.js';
import type { ModelSlot } from '../model-slot.js';

// package.json sits three levels above both src/server/routes/ and dist/server/routes/.
const VERSION: string = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;

/** One model's line in /health. */
function modelHealth(slot: ModelSlot) {
  return {
    state: slot.state,
    ...(slot.state === 'loading' ? { stage: slot.stage, progress: slot.fraction } : {}),
    ...(slot.state === 'unhealthy' || slot.state === 'failed' ? { error: slot.error ?? null } : {}),
    ...(slot.restarts > 0 ? { restarts: slot.restarts } : {}),
  };
}

export const healthRoute: FastifyPluginAsyncTypebox<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const health = async (_req: unknown, reply: FastifyReply) => {
    const slots = ctx.models.slots();
    const models = Object.fromEntries(slots.map((s) => [s.name, modelHealth(s)]));
    if (ctx.drain.draining) {
      reply.code(503).header('retry-after', String(ctx.drain.retryAfter()));
      return { status: 'draining', models };
    }
    const serving = slots.filter((s) => s.loaded);
    if (serving.length === 0) {
      const first = slots[0];
      if (!first || first.state === 'failed') {
        reply.code(503);
        return { status: 'failed', models };
      }
      reply.code(503).header('retry-after', '5');
      if (first.state === 'unhealthy') return { status: 'unhealthy', models };
      return { status: 'loading', stage: first.stage, progress: first.fraction, models };
    }
    return { status: serving.length === slots.length ? 'ok' : 'degraded', models };
  };
  app.get('/health', health);
  app.route({ method: ['GET', 'POST'], url: '/ping', handler: health });
  app.get('/livez', async (_req, reply) => {
    const fatal = ctx.models.fatal;
    if (fatal === undefined) return { status: 'alive' };
    reply.code(503);
    return { status: 'failed', model: fatal, error: ctx.models.get(fatal)?.error ?? null };
  });
  app.get('/version', async () => ({ version: VERSION }));
};
