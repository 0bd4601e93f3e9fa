// Loading one served model: its tokenizer and chat template (prepareModel: quick, and for the models named at
// start-up done before the server listens, so that a broken template stops `kvserve serve` at once), then
// the engine and the tokenizer threads in the background. A spec from the admin API is resolved here too
// (a Hub id downloads, an --engine-cache builds), so its failures are reported as the load's.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { applyEngineFlags } from '../build/engine-flags.js';
import { ConfigError, finishServerConfig, type ServerConfig } from '../config.js';
import { createEngine } from '../engine/engine.js';
import { resolveHubModels } from '../hub/resolve-model.js';
import type { ProgressFn } from '../load-progress.js';
import type { NativeModule } from '../runner/binding.js';
import { ChatTemplate, ChatTemplateError } from '../tokenizer/chat-template.js';
import { promptByteLimit } from '../tokenizer/prompt-bound.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { TokenizerPool } from '../tokenizer/tokenizer-pool.js';
import type { ModelLoader } from './model-registry.js';
import type { LoadedModel } from './model-slot.js';
import type { ModelSpec } from './model-spec.js';

export interface PreparedModel {
  tokenizer: TextTokenizer;
  chatTemplate: ChatTemplate | undefined;
}

/** A spec whose config is final (Hub ids resolved, engine flags applied) and whose tokenizer is loaded. */
export interface ResolvedSpec extends ModelSpec {
  resolved: true;
  prepared: PreparedModel;
}

const configPathOf = (config: ServerConfig) =>
  config.model.endsWith('.json') ? config.model : join(config.model, 'config.json');

/** The tokenizer and the chat template of a final config; a broken template is a ConfigError. */
export async function prepareModel(config: ServerConfig, log: Logger): Promise<PreparedModel> {
  const tokenizer = await TextTokenizer.forModel(config.tokenizer, {
    dummy: config.loadFormat === 'dummy',
    configPath: configPathOf(config),
    log: (m) => log.info(m),
  });
  return { tokenizer, chatTemplate: loadChatTemplate(config, tokenizer) };
}

/** A model's final config: Hub ids downloaded, paths checked, --engine / --engine-cache applied. */
export async function resolveConfig(
  config: ServerConfig,
  log: Logger,
  o: { native?: NativeModule; progress?: ProgressFn; hubProgress?: boolean } = {},
): Promise<ServerConfig> {
  const hub = await resolveHubModels(config, { progress: o.hubProgress ?? true, log });
  return applyEngineFlags(finishServerConfig(hub), { progress: o.progress, log: (m) => log.info(m), native: o.native });
}

/** Resolved and prepared: what is left is the engine. */
export async function resolveSpec(spec: ModelSpec, log: Logger, native?: NativeModule): Promise<ResolvedSpec> {
  if ((spec as Partial<ResolvedSpec>).resolved) return spec as ResolvedSpec;
  const config = await resolveConfig(spec.config, log, { native });
  return { ...spec, config, resolved: true, prepared: await prepareModel(config, log) };
}

/** The loader of `kvserve serve`: the native engine and the tokenizer threads of a spec. */
export function nativeModelLoader(log: Logger, native?: NativeModule): ModelLoader {
  return async (given, { onProgress, gpuMemoryUtilization }) => {
    const spec = await resolveSpec(given, log, native);
    const config = { ...spec.config, gpuMemoryUtilization };
    const { tokenizer, chatTemplate } = spec.prepared;
    const engineLoad = createEngine(config, native, onProgress);
    const poolStart = TokenizerPool.start(
      {
        dir: config.tokenizer,
        dummy: config.loadFormat === 'dummy',
        configPath: configPathOf(config),
        chatTemplate: chatTemplate?.source,
      },
      config.tokenizerWorkers,
      { tokenizer, template: chatTemplate },
    );
    // Whichever fails, the other is freed once it is up (a native load cannot be cancelled).
    const [engine, prompts] = await Promise.all([engineLoad, poolStart]).catch(async (err: unknown) => {
      await Promise.allSettled([engineLoad.then((e) => e.close()), poolStart.then((p) => p.close())]);
      throw err;
    });
    const info = engine.info;
    if (!chatTemplate) log.warn({ model: spec.name }, 'the model has no chat template: chat requests get 400');
    if ('reason' in tokenizer.bytesPerToken && config.maxPromptBytes === 0) {
      log.warn(
        { model: spec.name, reason: tokenizer.bytesPerToken.reason },
        'no prompt size bound follows from this tokenizer: prompts up to --body-limit are tokenized ' +
          '(set --max-prompt-bytes to bound them)',
      );
    }
    const loaded: LoadedModel = {
      client: engine.client,
      tokenizer,
      prompts,
      maxPromptBytes: promptByteLimit(
        tokenizer.bytesPerToken,
        info.maxModelLen,
        config.maxPromptBytes,
        config.bodyLimitBytes,
      ),
      chatTemplate,
      maxModelLen: info.maxModelLen,
      vocabSize: info.vocabSize,
      maxNumSeqs: config.maxNumSeqs,
      toolCallParser: config.toolCallParser,
      release: { engine: () => engine.close(), threads: () => prompts.close() },
      engine,
      info,
    };
    return loaded;
  };
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
