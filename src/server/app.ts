// The kvserve HTTP app as a fastify plugin: request ids, draining, auth, one error envelope, and the routes.
// `buildApp` makes a fastify instance around it (with the HTTP timeouts) without listening, so tests can
// drive it with any EngineClient.
import cors from '@fastify/cors';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ServerMetrics } from '../metrics/metrics.js';
import { registerAuth } from './auth.js';
import type { ServerContext } from './context.js';
import { Drain } from './drain.js';
import { toApiError } from './errors.js';
import { checkRawRequest, clientErrorHandler, frameworkErrors, notFoundHandler, routeTable } from './http-errors.js';
import { ModelRegistry } from './model-registry.js';
import { ModelSlot, type LoadedModel } from './model-slot.js';
import { requestIdOf } from './request-id.js';
import { type AdminDeps, adminRoutes } from './routes/admin.js';
import { healthRoute } from './routes/health.js';
import { metricsRoute } from './routes/metrics.js';
import { playgroundRoute } from './routes/playground.js';
import { tokenizeRoutes } from './routes/tokenize.js';
import { chatCompletionsRoute } from './routes/v1/chat-completions.js';
import { completionsRoute } from './routes/v1/completions.js';
import { modelsRoute } from './routes/v1/models.js';
import { responsesRoute } from './routes/v1/responses.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** performance.now() when the request's headers were read (the first hook): where TTFT and E2E start. */
    arrivalTime: number;
  }
}

export interface AppDeps {
  /** A loaded model, or a slot that is filled once loading finishes (/health answers 503 until then). */
  model?: LoadedModel | ModelSlot;
  servedModelName: string;
  /** The served models instead of `model` (startServe's: several, loaded and switched by the registry). */
  models?: ModelRegistry;
  apiKey?: string;
  /** Turns the admin API (/admin/models) on, behind this bearer key. */
  adminApiKey?: string;
  /** What the admin API needs to read model specs: the server's flags (their per-model defaults). */
  admin?: AdminDeps;
  /** Origins a browser may call the API from (CORS); ['*'] = any; empty or absent = CORS off. */
  allowedOrigins?: string[];
  maxQueue?: number; // waiting sequences before 503; 0 = unbounded (default)
  bodyLimitBytes?: number; // default 8 MiB
  headerTimeoutMs?: number; // headers must arrive within this (default 10 s; 0 = no limit)
  requestTimeoutMs?: number; // headers and body must arrive within this (default 30 s; 0 = no limit)
  keepAliveTimeoutMs?: number; // an idle keep-alive connection closes after this (default 5 s)
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent'; // default 'silent'
  /** Where log lines (JSON) go; default stdout. */
  logStream?: NodeJS.WritableStream;
  /** A logger to use instead (logLevel and logStream are then ignored): `kvserve serve`'s, for one log. */
  logger?: FastifyBaseLogger;
}

export interface AppOptions {
  ctx: ServerContext;
  apiKey?: string;
  allowedOrigins?: string[];
  adminApiKey?: string;
  admin?: AdminDeps;
}

/**
 * Request ids, draining, auth, the error envelope and the routes. Not encapsulated: its hooks and handlers
 * apply to the whole instance.
 */
export const kvserveApp: FastifyPluginAsync<AppOptions> = async (
  app,
  { ctx, apiKey, allowedOrigins = [], adminApiKey, admin },
) => {
  app.decorateRequest('arrivalTime', 0);
  // Not async (a hook's promise costs every request a turn of the microtask queue); a throw is the request's error.
  app.addHook('onRequest', (req, reply, done) => {
    req.arrivalTime = performance.now();
    // On the raw response, so that every answer carries it: fastify's, the error handler's, SSE's writeHead.
    reply.raw.setHeader('x-request-id', req.id);
    checkRawRequest(req.raw);
    if (ctx.drain.draining) {
      reply.raw.setHeader('connection', 'close');
      const path = req.url.split('?', 1)[0];
      if (!DRAIN_OPEN_PATHS.has(path!)) throw ctx.drain.refusal();
    }
    ctx.inflight++;
    reply.raw.once('close', () => ctx.inflight--);
    done();
  });
  // Off unless origins are named: a browser page elsewhere then cannot read the API. On, the plugin answers
  // the OPTIONS preflight (which carries no key, so auth lets OPTIONS through) and marks allowed answers.
  if (allowedOrigins.length > 0) {
    await app.register(cors, {
      origin: allowedOrigins.includes('*') ? '*' : allowedOrigins,
      exposedHeaders: ['x-request-id'],
      maxAge: 600,
    });
  }
  registerAuth(app, apiKey);
  // Bodies are JSON only: a text/plain body is a 415, not a string that fails the schema.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((err, req, reply) => {
    const api = toApiError(err, req.id);
    if (api.status >= 500 && api.code !== 'server_shutting_down') req.log.error({ err }, api.message);
    if (api.retryAfter !== undefined) reply.header('retry-after', String(api.retryAfter));
    return reply.code(api.status).send(api.body());
  });
  app.setNotFoundHandler(notFoundHandler(routeTable(app)));

  await app.register(healthRoute, { ctx });
  await app.register(metricsRoute, { ctx });
  await app.register(tokenizeRoutes, { ctx });
  await app.register(modelsRoute, { ctx });
  await app.register(chatCompletionsRoute, { ctx });
  await app.register(completionsRoute, { ctx });
  await app.register(responsesRoute, { ctx });
  await app.register(playgroundRoute);
  if (adminApiKey && admin) await app.register(adminRoutes, { ctx, adminApiKey, ...admin });
};

/** What still answers while draining: the probes (liveness must hold, readiness must fail) and the scrape. */
const DRAIN_OPEN_PATHS = new Set(['/health', '/ping', '/metrics', '/livez']);
(kvserveApp as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

export interface BuiltApp {
  app: FastifyInstance;
  ctx: ServerContext;
}

export async function buildApp(deps: AppDeps): Promise<BuiltApp> {
  const models = deps.models ?? new ModelRegistry();
  const metrics = new ServerMetrics(deps.servedModelName, {
    models: () => models.slots().map((s) => [s.name, s.stats()] as const),
  });
  const observe = (s: ModelSlot) =>
    s.observeSteps((n, ms, nativeMs) =>
      // After this turn: the step's tokens are handed on to their streams (and written) first.
      setImmediate(() => {
        const m = metrics.forModel(s.name);
        m.iterationTokens.observe(n);
        m.engineStepTime.observe(ms / 1000);
        if (nativeMs !== undefined) m.engineNativeStepTime.observe(nativeMs / 1000);
      }),
    );
  models.hooks.added = observe;
  models.hooks.removed = (name) => metrics.forget(name);
  for (const s of models.slots()) observe(s);
  if (!deps.models) {
    const slot = deps.model instanceof ModelSlot ? deps.model : new ModelSlot(deps.model);
    slot.adopt({ name: deps.servedModelName, maxQueue: deps.maxQueue ?? 0 });
    models.add(slot);
  }
  const empty = new ModelSlot(undefined, { name: deps.servedModelName });
  const ctx: ServerContext = {
    models,
    // Requests that name no model get the first; with every model unloaded, an empty slot answers for it.
    get slot() {
      return models.defaultSlot() ?? empty;
    },
    get servedModelName() {
      return models.defaultSlot()?.name ?? deps.servedModelName;
    },
    metrics,
    inflight: 0,
    drain: new Drain(),
  };
  const headersTimeout = deps.headerTimeoutMs ?? 10_000;
  const requestTimeout = deps.requestTimeoutMs ?? 30_000;
  // 0 would mean "never" to Node; a keep-alive timeout of 0 means "close once answered".
  const keepAliveTimeout = Math.max(1, deps.keepAliveTimeoutMs ?? 5_000);
  const timeouts = [
    headersTimeout > 0 ? `headers within ${headersTimeout / 1000} s` : '',
    requestTimeout > 0 ? `the whole request within ${requestTimeout / 1000} s` : '',
  ]
    .filter(Boolean)
    .join(', ');
  const app = Fastify({
    ...(deps.logger
      ? { loggerInstance: deps.logger }
      : { logger: { level: deps.logLevel ?? 'silent', ...(deps.logStream ? { stream: deps.logStream } : {}) } }),
    genReqId: requestIdOf,
    // Node measures both only until the request has been received: long responses (SSE) are not cut.
    requestTimeout,
    keepAliveTimeout,
    http: {
      headersTimeout,
      requestTimeout,
      keepAliveTimeout,
      connectionsCheckingInterval: checkingInterval(headersTimeout, requestTimeout),
    },
    clientErrorHandler: clientErrorHandler(timeouts),
    frameworkErrors,
    bodyLimit: deps.bodyLimitBytes ?? 8 * 1024 * 1024,
    // OpenAI rejects "0.5" where a number belongs; so do we (fastify's default would coerce it).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    // Let in-flight streams finish on close, but never hold the process open for idle keep-alives.
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();
  await app.register(kvserveApp, {
    ctx,
    apiKey: deps.apiKey,
    allowedOrigins: deps.allowedOrigins,
    adminApiKey: deps.adminApiKey,
    admin: deps.admin,
  });
  return { app, ctx };
}

/** How often Node looks for expired requests: Node's 30 s default would let a 10 s timeout run to 40 s. */
function checkingInterval(...timeouts: number[]): number {
  const shortest = Math.min(...timeouts.filter((t) => t > 0));
  return Number.isFinite(shortest) ? Math.min(1000, Math.max(10, Math.floor(shortest / 4))) : 30_000;
}
