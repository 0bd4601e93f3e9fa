// The admin API, on only with --admin-api-key and behind that bearer key (compared in constant time over
// SHA-256 digests, as the API key; neither key is ever logged: server-log.ts redacts the headers):
//   GET    /admin/models          every model's state (loading/ready/draining/unhealthy/failed) and load progress
//   POST   /admin/models          {"name", "model" | "engine", ...settings}: loads a new name in the background (202)
//   PUT    /admin/models/{name}   {"model" | "engine", ...settings}: switches the name once the new one is up (202)
//   DELETE /admin/models/{name}   unloads it once its requests are done (202)
// Settings are the serve flags a model has of its own (model-spec.ts), over the server's flags; a switch keeps
// the name's GPU share unless it names another.
import { existsSync } from 'node:fs';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerConfig } from '../../config.js';
import { isHubModelId } from '../../hub/resolve-model.js';
import { keyMatches } from '../auth.js';
import type { ServerContext } from '../context.js';
import { ApiError, invalid } from '../errors.js';
import type { PendingLoad } from '../model-registry.js';
import type { ModelSlot } from '../model-slot.js';
import { type ModelSpec, modelSpec, SpecError } from '../model-spec.js';

export interface AdminDeps {
  /** The server's parsed flags: what a model's settings default to. */
  base: ServerConfig;
}

interface AdminOptions extends AdminDeps {
  ctx: ServerContext;
  adminApiKey: string;
}

/** The key from `Authorization: Bearer KEY`. */
function bearer(req: FastifyRequest): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization?.trim() ?? '');
  return m ? m[1]!.trim() : undefined;
}

function pendingView(p: PendingLoad | undefined) {
  return p ? { source: p.spec.source, kind: p.kind, stage: p.stage, progress: p.fraction } : null;
}

function modelView(slot: ModelSlot, spec: ModelSpec | undefined, pending: PendingLoad | undefined) {
  const inst = slot.instance;
  const info = inst?.model.info;
  return {
    name: slot.name,
    state: slot.state,
    source: inst?.source ?? spec?.source ?? null,
    // While it loads (first load, switch or restart): what, and how far.
    loading: pendingView(pending),
    error: slot.error ?? null,
    restarts: slot.restarts,
    retry_at: slot.retryAt === undefined ? null : new Date(slot.retryAt).toISOString(),
    in_flight: inst?.numLeases ?? 0,
    // Instances switched away from or unloaded that still finish their requests.
    draining_instances: slot.retiring.size,
    device: info?.device ?? null,
    max_model_len: inst?.model.maxModelLen ?? null,
    kv_blocks: info?.numKvBlocks ?? null,
    kv_cache_dtype: info?.kvCacheDtype ?? null,
    limits: {
      max_num_seqs: inst?.model.maxNumSeqs ?? spec?.config.maxNumSeqs ?? null,
      max_queue: slot.maxQueue,
      gpu_memory_utilization: inst?.gpuShare ?? spec?.gpuShare ?? null,
    },
  };
}

export const adminRoutes: FastifyPluginAsync<AdminOptions> = async (app, { ctx, adminApiKey, base }) => {
  const models = ctx.models;
  app.addHook('onRequest', async (req) => {
    const given = bearer(req);
    if (given === undefined) {
      throw new ApiError('invalid_api_key', 'missing admin key: send it as "Authorization: Bearer <key>"');
    }
    if (!keyMatches(adminApiKey, given)) throw new ApiError('invalid_api_key', 'incorrect admin key provided');
  });
  // Public to the API key's check (auth.ts): the admin key above guards these routes instead.
  const open = { config: { public: true } };

  /** A spec from a request body, checked before anything loads: a bad setting or a missing path is a 400. */
  const specOf = (body: unknown, name: string | undefined, where: string, share: number): ModelSpec => {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw invalid('the body must be a JSON object with a name and a model or engine');
    }
    const fields = { ...(body as Record<string, unknown>) };
    if (name !== undefined) {
      if (fields.name !== undefined && fields.name !== name)
        throw invalid(`the body names \`${String(fields.name)}\`, the path \`${name}\``, 'name');
      fields.name = name;
    }
    let spec: ModelSpec;
    try {
      spec = modelSpec(fields, base, where, share);
    } catch (e) {
      if (e instanceof SpecError) throw invalid(e.message, e.param);
      throw e;
    }
    const path = spec.config.engine || spec.config.model;
    const key = spec.config.engine ? 'engine' : 'model';
    if (!(key === 'model' && isHubModelId(path)) && !existsSync(path)) {
      throw invalid(`${key} not found: ${path} (a folder on the server, or org/name on the Hugging Face Hub)`, key);
    }
    return spec;
  };
  const explicitShare = (body: unknown) => {
    const b = (body ?? {}) as Record<string, unknown>;
    return b['gpu-memory-utilization'] ?? b.gpu_memory_utilization;
  };
  const accepted = (reply: FastifyReply, slot: ModelSlot, pending?: PendingLoad) =>
    reply.code(202).send({ name: slot.name, state: slot.state, loading: pendingView(pending) });
  const entryOf = (name: string) => models.list().find((m) => m.slot.name === name);
  const left = () => Math.max(0.05, base.gpuMemoryUtilization - models.gpuShareInUse());

  app.get('/admin/models', open, async () => ({
    object: 'list',
    data: models.list().map((m) => modelView(m.slot, m.spec, m.pending)),
  }));

  app.post('/admin/models', open, async (req, reply) => {
    // A new model takes what is left of the server's --gpu-memory-utilization unless it asks for its own share.
    const spec = specOf(req.body, undefined, 'POST /admin/models', left());
    const { slot, ready } = models.load(spec);
    ready.catch(() => undefined); // reported in GET /admin/models (state failed, error)
    return accepted(reply, slot, entryOf(spec.name)?.pending);
  });

  app.put<{ Params: { name: string } }>('/admin/models/:name', open, async (req, reply) => {
    const current = models.route(req.params.name);
    const share = explicitShare(req.body) === undefined ? (entryOf(current.name)?.spec?.gpuShare ?? left()) : 0;
    const spec = specOf(req.body, current.name, `PUT /admin/models/${current.name}`, share);
    models.switchTo(current.name, spec).catch(() => undefined); // a failure leaves the old model serving
    return accepted(reply, current, entryOf(current.name)?.pending);
  });

  app.delete<{ Params: { name: string } }>('/admin/models/:name', open, async (req, reply) => {
    const slot = models.route(req.params.name);
    models.unload(slot.name).catch(() => undefined);
    return accepted(reply, slot);
  });
};
