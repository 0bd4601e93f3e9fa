// `kvserve serve`: parse flags, listen, load the models showing progress, serve until SIGINT/SIGTERM.
// `startServe` is the same without flags or signals, for tests and embedding. Once the flags parse, the server
// says everything through one log (server-log.ts): records on stdout, nothing on stderr. One `--model DIR` serves
// one model, as it always did; `--model NAME=DIR` repeated or `--models-file` serve several (serve-models.ts).
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { renderHelp } from '../cli-help.js';
import { ConfigError, corsOrigins, parseFlags, serverDefaults, serverFlags, type ServerConfig } from '../config.js';
import type { Engine } from '../engine/engine.js';
import { logProgress } from '../load-progress.js';
import { loadNative, type NativeModule } from '../runner/binding.js';
import { buildApp } from './app.js';
import { nativeModelLoader, prepareModel, type ResolvedSpec } from './model-loader.js';
import { ModelRegistry } from './model-registry.js';
import type { ModelSlot } from './model-slot.js';
import { type ModelSpec, defaultModelName } from './model-spec.js';
import { initialSpecs, takeModelFlags } from './serve-models.js';
import { closeGracefully, listen, onShutdownSignal } from './server.js';
import { createServerLogger, logProcessWarnings } from './server-log.js';

const help = () =>
  renderHelp({
    usage: 'kvserve serve [--model DIR] [options]',
    summary:
      'Serves an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/responses, /v1/models), /health, ' +
      '/metrics, and a chat playground at / in the browser. It logs on stdout: start-up, loading progress, ' +
      'requests, warnings and errors, as JSON lines or, on a terminal, one readable line each (--log-format). ' +
      'Several models: repeat --model NAME=DIR (requests pick one by their "model"), or --models-file.',
    flags: serverFlags,
    defaults: serverDefaults(),
    examples: [
      'kvserve serve                                  # the stories260K demo on http://127.0.0.1:8000',
      'kvserve serve --model DIR --device cuda --host 0.0.0.0 --port 8080 --api-key KEY',
      'kvserve serve --load-format dummy --model configs/llama-3-8b.json --device cuda',
      'kvserve serve --engine ENGINE_DIR                 # an engine made by kvserve build',
      'kvserve serve --model a=models/stories260K --model b=DIR --admin-api-key KEY   # two models',
    ],
  });

export interface ServeHandle {
  url: string;
  app: FastifyInstance;
  /** The first model's slot (the one requests naming no model get). */
  slot: ModelSlot;
  /** Every served model, by name. */
  models: ModelRegistry;
  /** Resolves with the first model's engine once every model named at start-up serves; rejects when one fails. */
  ready: Promise<Engine>;
  /** Drains: in-flight requests get `graceMs` (default --drain-timeout) to finish, the rest get an error. */
  close(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  /** The models to serve instead of the config's one, each with its final config (serve resolves them). */
  models?: ModelSpec[];
  /** The native addon (tests wrap it to see and break engines). */
  native?: NativeModule;
}

export async function runServeCli(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(help());
    return 0;
  }
  // A bad flag is one plain line on stderr (cli.ts): there is no server, nor a log format, yet.
  const { argv: rest0, models } = takeModelFlags(argv);
  const { config: parsed, rest } = parseFlags<ServerConfig>(rest0, serverFlags, serverDefaults());
  if (rest.length > 0) throw new ConfigError(`unexpected argument "${rest[0]}" (see --help)`);
  const log = createServerLogger({ level: parsed.logLevel, format: parsed.logFormat });
  logProcessWarnings(log);
  try {
    return await serve(parsed, models, log);
  } catch (err) {
    // With nothing logged, cli.ts's line on stderr is the only way to say why.
    if (parsed.logLevel === 'silent') throw err;
    // As cli.ts: an expected failure (a bad model folder, a port in use, an engine error) is its message
    // alone; the stack only with KVSERVE_DEBUG.
    const message = err instanceof Error ? err.message : String(err);
    if (process.env.KVSERVE_DEBUG && !(err instanceof ConfigError)) log.fatal({ err }, message);
    else log.fatal(message);
    return 1;
  }
}

async function serve(parsed: ServerConfig, modelArgs: string[], log: Logger): Promise<number> {
  const silent = parsed.logLevel === 'silent';
  // Hub downloads and an --engine-cache build on first start report as the loading does: in the server's log.
  const specs = await initialSpecs(parsed, modelArgs, log, {
    hubProgress: !silent,
    progress: silent ? undefined : logProgress(log),
  });
  const shutdown = onShutdownSignal();
  const server = await startServe(specs[0]!.config, log, { models: specs });
  let first: unknown;
  try {
    first = await Promise.race([server.ready, shutdown]);
  } catch (err) {
    await server.close(); // a model failed to load: stop listening, then report it
    throw err;
  }
  const signal = typeof first === 'string' ? first : await shutdown;
  // drainTimeout: the seconds in-flight requests get to finish.
  log.info({ signal, drainTimeout: parsed.drainTimeout }, `${signal}: draining (a second signal exits at once)`);
  await server.close();
  log.info('stopped');
  return 0;
}

/**
 * Listens first (so /health answers 503 while loading), then loads the models in the background. `config` is
 * the server's (final, as finishServerConfig leaves it) and its one model's, unless `o.models` lists them. Logs
 * to `log`, by default a logger of the config's level and format on stdout.
 */
export async function startServe(
  config: ServerConfig,
  log: Logger = createServerLogger({ level: config.logLevel, format: config.logFormat }),
  o: StartOptions = {},
): Promise<ServeHandle> {
  const given = o.models ?? [
    {
      name: defaultModelName(config),
      config,
      gpuShare: config.gpuMemoryUtilization,
      source: config.engine || config.model,
    },
  ];
  // Tokenizers and chat templates before listening: a broken template stops the server here, in one line.
  const specs: ResolvedSpec[] = [];
  for (const spec of given) specs.push({ ...spec, resolved: true, prepared: await prepareModel(spec.config, log) });
  const native = o.native;
  const models = new ModelRegistry({
    loader: nativeModelLoader(log, native),
    graceMs: config.drainTimeout * 1000,
    restartBackoffMs: config.restartBackoff * 1000,
    maxRestarts: config.maxRestarts,
    onGpu: (spec) => onGpu(spec, native),
    log,
  });
  const { app, ctx } = await buildApp({
    models,
    servedModelName: specs[0]!.name,
    apiKey: config.apiKey,
    adminApiKey: config.adminApiKey,
    admin: { base: config },
    allowedOrigins: corsOrigins(config.allowedOrigins),
    bodyLimitBytes: config.bodyLimitBytes,
    headerTimeoutMs: config.headerTimeout * 1000,
    requestTimeoutMs: config.requestBodyTimeout * 1000,
    keepAliveTimeoutMs: config.keepAliveTimeout * 1000,
    logger: log,
  });
  const { url } = await listen(app, config.host, config.port); // fastify logs "listening on URL"
  const loads = specs.map((spec) => models.load(spec, { startup: true }));
  const names = specs.map((s) => s.name);
  log.info(
    { model: names.length === 1 ? names[0] : names },
    `loading the model${names.length === 1 ? ' (/health answers 503 until it is ready)' : 's (/health answers 503 until they are ready)'}`,
  );
  log.info({ url: `${url}/` }, 'chat in the browser');
  if (config.adminApiKey) log.info({ url: `${url}/admin/models` }, 'admin API on');

  // A failure is reported through `ready`, never unhandled.
  const ready = Promise.all(loads.map((l) => l.ready)).then(() => loads[0]!.slot.loaded!.engine!);
  ready.catch(() => undefined);
  let closing: Promise<void> | undefined;
  const close = (graceMs = config.drainTimeout * 1000) =>
    // The native load cannot be cancelled: an engine that is still loading is freed once it is up.
    (closing ??= closeGracefully(app, ctx, () => models.closeAll(), graceMs));
  return { url, app, slot: loads[0]!.slot, models, ready, close };
}

/** Whether a model's engine runs on the GPU, where the models' memory shares must fit in one device. */
function onGpu(spec: ModelSpec, native: NativeModule | undefined): boolean {
  if (spec.config.device !== 'auto') return spec.config.device === 'cuda';
  try {
    return (native ?? loadNative()).cudaAvailable();
  } catch {
    return false;
  }
}
