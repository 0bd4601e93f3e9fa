// `kvserve serve`: parse flags, listen, load the model showing progress, serve until SIGINT/SIGTERM.
// `startServe` is the same without flags or signals, for tests and embedding. Once the flags parse, the server
// says everything through one log (server-log.ts): records on stdout, nothing on stderr.
import { basename, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { applyEngineFlags } from '../build/engine-flags.js';
import type { Logger } from 'pino';
import { renderHelp } from '../cli-help.js';
import {
  ConfigError,
  corsOrigins,
  finishServerConfig,
  parseFlags,
  serverDefaults,
  serverFlags,
  type ServerConfig,
} from '../config.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { resolveHubModels } from '../hub/resolve-model.js';
import { ChatTemplate, ChatTemplateError } from '../tokenizer/chat-template.js';
import { promptByteLimit } from '../tokenizer/prompt-bound.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { TokenizerPool } from '../tokenizer/tokenizer-pool.js';
import { buildApp } from './app.js';
import { ModelSlot } from './model-slot.js';
import { closeGracefully, listen, onShutdownSignal } from './server.js';
import { createServerLogger, logProcessWarnings } from './server-log.js';
import { logProgress, type ProgressFn } from '../load-progress.js';

const help = () =>
  renderHelp({
    usage: 'kvserve serve [--model DIR] [options]',
    summary:
      'Serves an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/responses, /v1/models), /health, ' +
      '/metrics, and a chat playground at / in the browser. It logs on stdout: start-up, loading progress, ' +
      'requests, warnings and errors, as JSON lines or, on a terminal, one readable line each (--log-format).',
    flags: serverFlags,
    defaults: serverDefaults(),
    examples: [
      'kvserve serve                                  # the stories260K demo on http://127.0.0.1:8000',
      'kvserve serve --model DIR --device cuda --host 0.0.0.0 --port 8080 --api-key KEY',
      'kvserve serve --load-format dummy --model configs/llama-3-8b.json --device cuda',
      'kvserve serve --engine ENGINE_DIR                 # an engine made by kvserve build',
    ],
  });

export interface ServeHandle {
  url: string;
  app: FastifyInstance;
  slot: ModelSlot;
  /** Resolves with the engine once the model serves; rejects when loading fails. */
  ready: Promise<Engine>;
  /** Drains: in-flight requests get `graceMs` (default --drain-timeout) to finish, the rest get an error. */
  close(graceMs?: number): Promise<void>;
}

export async function runServeCli(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(help());
    return 0;
  }
  // A bad flag is one plain line on stderr (cli.ts): there is no server, nor a log format, yet.
  const { config: parsed, rest } = parseFlags<ServerConfig>(argv, serverFlags, serverDefaults());
  if (rest.length > 0) throw new ConfigError(`unexpected argument "${rest[0]}" (see --help)`);
  const log = createServerLogger({ level: parsed.logLevel, format: parsed.logFormat });
  logProcessWarnings(log);
  try {
    return await serve(parsed, log);
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

async function serve(parsed: ServerConfig, log: Logger): Promise<number> {
  const silent = parsed.logLevel === 'silent';
  const hubResolved = await resolveHubModels(parsed, { progress: !silent, log });
  // An --engine-cache build on first start reports as the loading does: records in the server's log.
  const config = await applyEngineFlags(finishServerConfig(hubResolved), {
    progress: silent ? undefined : logProgress(log),
    log: (m) => log.info(m),
  });
  const shutdown = onShutdownSignal();
  const server = await startServe(config, log);
  let first: unknown;
  try {
    first = await Promise.race([server.ready, shutdown]);
  } catch (err) {
    await server.close(); // the model failed to load: stop listening, then report it
    throw err;
  }
  const signal = typeof first === 'string' ? first : await shutdown;
  // drainTimeout: the seconds in-flight requests get to finish.
  log.info({ signal, drainTimeout: config.drainTimeout }, `${signal}: draining (a second signal exits at once)`);
  await server.close();
  log.info('stopped');
  return 0;
}

/**
 * Listens first (so /health answers 503 while loading), then loads the model in the background. Logs to
 * `log`, by default a logger of the config's level and format on stdout.
 */
export async function startServe(
  config: ServerConfig,
  log: Logger = createServerLogger({ level: config.logLevel, format: config.logFormat }),
): Promise<ServeHandle> {
  const dummy = config.loadFormat === 'dummy';
  const configPath = config.model.endsWith('.json') ? config.model : join(config.model, 'config.json');
  const tokenizer = await TextTokenizer.forModel(config.tokenizer, {
    dummy,
    configPath,
    log: (m) => log.info(m),
  });
  const chatTemplate = loadChatTemplate(config, tokenizer);
  const servedModelName = config.servedModelName || basename(config.model).replace(/\.json$/, '');
  const slot = new ModelSlot();
  const { app, ctx } = await buildApp({
    model: slot,
    servedModelName,
    apiKey: config.apiKey,
    allowedOrigins: corsOrigins(config.allowedOrigins),
    maxQueue: config.maxQueue,
    bodyLimitBytes: config.bodyLimitBytes,
    headerTimeoutMs: config.headerTimeout * 1000,
    requestTimeoutMs: config.requestBodyTimeout * 1000,
    keepAliveTimeoutMs: config.keepAliveTimeout * 1000,
    logger: log,
  });
  const { url } = await listen(app, config.host, config.port); // fastify logs "listening on URL"
  log.info({ model: servedModelName }, 'loading the model (/health answers 503 until it is ready)');
  log.info({ url: `${url}/` }, 'chat in the browser');

  // Both load in the background; a failure of either is reported through `ready`, never unhandled.
  const engineLoad = createEngine(config, undefined, progressReporter(slot, log));
  const poolStart = TokenizerPool.start(
    { dir: config.tokenizer, dummy, configPath, chatTemplate: chatTemplate?.source },
    config.tokenizerWorkers,
  );
  engineLoad.catch(() => undefined);
  poolStart.catch(() => undefined);
  const ready = Promise.all([engineLoad, poolStart]).then(([engine, prompts]) => {
    const info = engine.info;
    const maxPromptBytes = promptByteLimit(
      tokenizer.bytesPerToken,
      info.maxModelLen,
      config.maxPromptBytes,
      config.bodyLimitBytes,
    );
    slot.ready({
      client: engine.client,
      tokenizer,
      prompts,
      maxPromptBytes,
      chatTemplate,
      maxModelLen: info.maxModelLen,
      vocabSize: info.vocabSize,
      maxNumSeqs: config.maxNumSeqs,
      toolCallParser: config.toolCallParser,
    });
    log.info(
      {
        model: servedModelName,
        architecture: info.architecture,
        device: info.device,
        dtype: info.dtype,
        maxModelLen: info.maxModelLen,
        kvBlocks: info.numKvBlocks,
        blockSize: info.blockSize,
      },
      'ready',
    );
    if (!chatTemplate) log.warn({ model: servedModelName }, 'the model has no chat template: chat requests get 400');
    if ('reason' in tokenizer.bytesPerToken && config.maxPromptBytes === 0) {
      log.warn(
        { reason: tokenizer.bytesPerToken.reason },
        'no prompt size bound follows from this tokenizer: prompts up to --body-limit are tokenized ' +
          '(set --max-prompt-bytes to bound them)',
      );
    }
    return engine;
  });
  ready.catch(() => undefined);
  let closing: Promise<void> | undefined;
  const close = (graceMs = config.drainTimeout * 1000) =>
    (closing ??= closeGracefully(
      app,
      ctx,
      async () => {
        // The native load cannot be cancelled: an engine that is still loading is freed once it is up.
        await engineLoad.then(
          (e) => e.close(),
          () => undefined,
        );
        await poolStart.then(
          (p) => p.close(),
          () => undefined,
        );
      },
      graceMs,
    ));
  return { url, app, slot, ready, close };
}

/** --chat-template FILE wins over the model's own template; a broken template fails at start-up. */
function loadChatTemplate(config: ServerConfig, tokenizer: TextTokenizer): ChatTemplate | undefined {
  try {
    if (config.chatTemplate) return ChatTemplate.fromFile(config.chatTemplate, tokenizer.specialTokens);
    return tokenizer.chatTemplate === undefined
      ? undefined
      : new ChatTemplate(tokenizer.chatTemplate, tokenizer.specialTokens);
  } catch (e) {
    if (e instanceof ChatTemplateError || (e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError(`--chat-template: ${(e as Error).message}`);
    }
    throw e;
  }
}

/** Feeds the slot (for /health) and logs the progress (a bounded number of records a stage). */
function progressReporter(slot: ModelSlot, log: Logger): ProgressFn {
  const record = logProgress(log);
  return (stage, fraction) => {
    slot.progress(stage, fraction);
    record(stage, fraction);
  };
}
