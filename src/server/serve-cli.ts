// `kvserve serve`: parse flags, listen, load the model showing progress, serve until SIGINT/SIGTERM.
import { basename } from 'node:path';
import { ConfigError, finishEngineConfig, formatHelp, parseFlags, serverDefaults, serverFlags, type ServerConfig } from '../config.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { ChatTemplate, ChatTemplateError } from '../tokenizer/chat-template.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { buildApp } from './app.js';
import { ModelSlot } from './model-slot.js';
import { closeGracefully, listen, onShutdownSignal } from './server.js';

const USAGE = 'usage: kvserve serve [--model DIR] [options]';

export async function runServeCli(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(`${USAGE}\n\n${formatHelp(serverFlags)}`);
    return 0;
  }
  const { config: parsed, rest } = parseFlags<ServerConfig>(argv, serverFlags, serverDefaults());
  if (rest.length > 0) throw new ConfigError(`unexpected argument "${rest[0]}" (see --help)`);
  const config = finishEngineConfig(parsed);
  const tokenizer = await TextTokenizer.load(config.tokenizer);
  const chatTemplate = loadChatTemplate(config, tokenizer);
  const servedModelName = config.servedModelName || basename(config.model).replace(/\.json$/, '');

  const slot = new ModelSlot();
  const { app } = await buildApp({
    model: slot,
    servedModelName,
    apiKey: config.apiKey,
    maxQueue: config.maxQueue,
    bodyLimitBytes: config.bodyLimitBytes,
    logLevel: config.logLevel,
  });
  const shutdown = onShutdownSignal();
  const { url } = await listen(app, config.host, config.port);
  log(config, `kvserve: listening on ${url} (model "${servedModelName}" loading; /health answers 503 until ready)`);

  let engine: Engine | undefined;
  try {
    const loading = createEngine(config, undefined, progressReporter(config, slot));
    const first = await Promise.race([loading, shutdown]);
    if (typeof first === 'string') {
      // Interrupted while loading: the native load cannot be cancelled; free it once it is done.
      await app.close();
      await loading.then((e) => e.close(), () => undefined);
      return 130;
    }
    engine = first;
  } catch (err) {
    await app.close();
    throw err;
  }
  const info = engine.info;
  slot.ready({ client: engine.client, tokenizer, chatTemplate, maxModelLen: info.maxModelLen, vocabSize: info.vocabSize });
  log(
    config,
    `kvserve: ready — ${info.architecture} on ${info.device} (${info.dtype}), context ${info.maxModelLen}, ` +
      `${info.numKvBlocks} KV blocks of ${info.blockSize} tokens${chatTemplate ? '' : ', no chat template (chat requests get 400)'}`,
  );

  const signal = await shutdown;
  log(config, `kvserve: ${signal}, finishing in-flight requests (a second signal exits at once)`);
  const live = engine;
  await closeGracefully(app, () => live.close());
  return 0;
}

/** --chat-template FILE wins over the model's own template; a broken template fails at start-up. */
function loadChatTemplate(config: ServerConfig, tokenizer: TextTokenizer): ChatTemplate | undefined {
  try {
    if (config.chatTemplate) return ChatTemplate.fromFile(config.chatTemplate, tokenizer.specialTokens);
    return tokenizer.chatTemplate === undefined ? undefined : new ChatTemplate(tokenizer.chatTemplate, tokenizer.specialTokens);
  } catch (e) {
    if (e instanceof ChatTemplateError || (e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError(`--chat-template: ${(e as Error).message}`);
    }
    throw e;
  }
}

/** Feeds the slot (for /health) and prints progress on stderr: one line rewritten in place on a terminal. */
function progressReporter(config: ServerConfig, slot: ModelSlot): (stage: string, fraction: number) => void {
  const tty = process.stderr.isTTY;
  let last = '';
  return (stage, fraction) => {
    slot.progress(stage, fraction);
    if (config.logLevel === 'silent') return;
    const line = `loading: ${stage} ${(fraction * 100).toFixed(0)}%`;
    if (line === last) return;
    last = line;
    if (tty) process.stderr.write(`\r\x1b[K${line}${fraction >= 1 ? '\n' : ''}`);
    else if (fraction >= 1 || fraction === 0) process.stderr.write(`${line}\n`);
  };
}

function log(config: ServerConfig, line: string): void {
  if (config.logLevel !== 'silent') process.stderr.write(`${line}\n`);
}
