// Starts the real fastify app on a free port, around the fake engine and the real stories260K tokenizer.
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../../../src/server/app.js';
import type { ServerContext } from '../../../src/server/context.js';
import { ModelSlot, type LoadedModel } from '../../../src/server/model-slot.js';
import { closeGracefully, listen } from '../../../src/server/server.js';
import { ChatTemplate } from '../../../src/tokenizer/chat-template.js';
import { promptByteLimit } from '../../../src/tokenizer/prompt-bound.js';
import { TextTokenizer } from '../../../src/tokenizer/tokenizer.js';
import { TokenizerPool } from '../../../src/tokenizer/tokenizer-pool.js';
import { FakeEngine, type FakeEngineOptions } from './fake-engine.js';
import { storiesDir, storiesScript } from './stories.js';

export const MODEL = 'stories260K';

export interface TestServer {
  url: string; // http://127.0.0.1:PORT
  baseURL: string; // url + /v1, for the openai client
  app: FastifyInstance;
  ctx: ServerContext;
  engine: FakeEngine;
  tokenizer: TextTokenizer;
  close(): Promise<void>;
}

export interface TestServerOptions extends Partial<Omit<AppDeps, 'model'>> {
  engine?: Partial<FakeEngineOptions>;
  /** A template source; null = the model has none. Default: the model's own. */
  chatTemplate?: string | null;
  /** Serve an empty slot (the model "loading"). */
  loading?: boolean;
  /** The engine's --max-num-seqs (default 256). */
  maxNumSeqs?: number;
  /** --max-prompt-bytes (default: derived from the context, as the server does). */
  maxPromptBytes?: number;
}

let tokenizer: TextTokenizer | undefined;
/** One tokenizer pool per template source, shared by the servers of a test file (threads start once). */
const pools = new Map<string | null, Promise<TokenizerPool>>();

export async function loadModel(
  engine: FakeEngine,
  chatTemplate?: string | null,
  maxModelLen = 512,
  maxNumSeqs = 256,
  maxPromptBytes = 0,
): Promise<LoadedModel> {
  tokenizer ??= await TextTokenizer.load(storiesDir);
  const source = chatTemplate === undefined ? (tokenizer.chatTemplate ?? null) : chatTemplate;
  const template = source ? new ChatTemplate(source, tokenizer.specialTokens) : undefined;
  if (!pools.has(source)) {
    pools.set(
      source,
      TokenizerPool.start(
        { dir: storiesDir, dummy: false, configPath: `${storiesDir}/config.json`, chatTemplate: source ?? undefined },
        2,
        // as the server's loader: the main thread's tokenizer and template take the short texts (about 1 KiB
        // here, fixed so that which texts go to the threads does not depend on this machine's speed)
        { tokenizer, template, maxChars: 1024 },
      ),
    );
  }
  return {
    client: engine,
    tokenizer,
    prompts: await pools.get(source)!,
    maxPromptBytes: promptByteLimit(tokenizer.bytesPerToken, maxModelLen, maxPromptBytes, 8 * 1024 * 1024),
    chatTemplate: template,
    maxModelLen,
    vocabSize: 512,
    maxNumSeqs,
  };
}

export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const engine = new FakeEngine({ script: storiesScript, eosTokenIds: [2], ...opts.engine });
  const model = await loadModel(
    engine,
    opts.chatTemplate,
    opts.engine?.maxModelLen,
    opts.maxNumSeqs,
    opts.maxPromptBytes,
  );
  const { app, ctx } = await buildApp({
    servedModelName: MODEL,
    ...opts,
    model: opts.loading ? new ModelSlot() : model,
  });
  const { url } = await listen(app, '127.0.0.1', 0);
  return {
    url,
    baseURL: `${url}/v1`,
    app,
    ctx,
    engine,
    tokenizer: model.tokenizer,
    close: () => closeGracefully(app, ctx, async () => undefined, 0),
  };
}
