// GET /health, the readiness probe: 503 while a model named at start-up still loads (with the loading stage),
// while no model serves and while draining (so a load balancer stops sending); 200 while the models serve: `ok`
// when all do, `degraded` when some are loading (added later), restarting or failed (they answer 503 themselves).
// With several models, `models` has each one's state; with one, the body is what it always was
// ({"status": "ok"}, {"status": "loading", "stage", "progress"}, ...). GET and POST /ping
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
    const more = slots.length > 1 ? { models: Object.fromEntries(slots.map((s) => [s.name, modelHealth(s)])) } : {};
    if (ctx.drain.draining) {
      reply.code(503).header('retry-after', String(ctx.drain.retryAfter()));
      return { status: 'draining', ...more };
    }
    // A pod is ready once it serves everything it was started with: a rolling update then never trades a pod
    // that serves a model for one still loading it.
    const starting = slots.find((s) => s.startup && s.state === 'loading');
    if (starting) {
      reply.code(503).header('retry-after', '5');
      return { status: 'loading', stage: starting.stage, progress: starting.fraction, ...more };
    }
    const serving = slots.filter((s) => s.loaded);
    if (serving.length > 0) return { status: serving.length === slots.length ? 'ok' : 'degraded', ...more };
    const first = slots[0];
    const error = first?.error === undefined ? {} : { error: first.error };
    if (!first || first.state === 'failed') {
      reply.code(503);
      return { status: 'failed', ...error, ...more };
    }
    reply.code(503).header('retry-after', '5');
    if (first.state === 'unhealthy') return { status: 'unhealthy', ...error, ...more };
    return { status: 'loading', stage: first.stage, progress: first.fraction, ...more };
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
