// The kvserve HTTP app as a fastify plugin: auth, one error envelope, and the routes. `buildApp` makes a
// fastify instance around it without listening, so tests can drive it with any EngineClient.
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ServerMetrics } from '../metrics/metrics.js';
import { registerAuth } from './auth.js';
import type { ServerContext } from './context.js';
import { ApiError, toApiError } from './errors.js';
import { ModelSlot, type LoadedModel } from './model-slot.js';
import { healthRoute } from './routes/health.js';
import { metricsRoute } from './routes/metrics.js';
import { playgroundRoute } from './routes/playground.js';
import { tokenizeRoutes } from './routes/tokenize.js';
import { chatCompletionsRoute } from './routes/v1/chat-completions.js';
import { completionsRoute } from './routes/v1/completions.js';
import { modelsRoute } from './routes/v1/models.js';

export interface AppDeps {
  /** A loaded model, or a slot that is filled once loading finishes (/health answers 503 until then). */
  model: LoadedModel | ModelSlot;
  servedModelName: string;
  apiKey?: string;
  maxQueue?: number;               // waiting sequences before 503; 0 = unbounded (default)
  bodyLimitBytes?: number;         // default 8 MiB
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';  // default 'silent'
}

export interface AppOptions {
  ctx: ServerContext;
  apiKey?: string;
}

/** Auth, error envelope and routes. Not encapsulated: its hooks and handlers apply to the whole instance. */
export const kvserveApp: FastifyPluginAsync<AppOptions> = async (app, { ctx, apiKey }) => {
  app.addHook('onRequest', async (_req, reply) => {
    ctx.inflight++;
    reply.raw.once('close', () => ctx.inflight--);
  });
  registerAuth(app, apiKey);

  app.setErrorHandler((err, req, reply) => {
    const api = toApiError(err);
    if (api.status >= 500) req.log.error({ err }, api.message);
    if (api.retryAfter !== undefined) reply.header('retry-after', String(api.retryAfter));
    return reply.code(api.status).send(api.body());
  });
  app.setNotFoundHandler((req, reply) => {
    const api = new ApiError('not_found', `no route for ${req.method} ${req.url.split('?', 1)[0]}`);
    return reply.code(api.status).send(api.body());
  });

  await app.register(healthRoute, { ctx });
  await app.register(metricsRoute, { ctx });
  await app.register(tokenizeRoutes, { ctx });
  await app.register(modelsRoute, { ctx });
  await app.register(chatCompletionsRoute, { ctx });
  await app.register(completionsRoute, { ctx });
  await app.register(playgroundRoute);
};
(kvserveApp as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

export interface BuiltApp {
  app: FastifyInstance;
  ctx: ServerContext;
}

export async function buildApp(deps: AppDeps): Promise<BuiltApp> {
  const slot = deps.model instanceof ModelSlot ? deps.model : new ModelSlot(deps.model);
  const ctx: ServerContext = {
    slot,
    servedModelName: deps.servedModelName,
    maxQueue: deps.maxQueue ?? 0,
    admittedSequences: 0,
    metrics: new ServerMetrics(deps.servedModelName, () => slot.stats()),
    inflight: 0,
  };
  const app = Fastify({
    logger: { level: deps.logLevel ?? 'silent' },
    bodyLimit: deps.bodyLimitBytes ?? 8 * 1024 * 1024,
    // OpenAI rejects "0.5" where a number belongs; so do we (fastify's default would coerce it).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    // Let in-flight streams finish on close, but never hold the process open for idle keep-alives.
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();
  await app.register(kvserveApp, { ctx, apiKey: deps.apiKey });
  return { app, ctx };
}
