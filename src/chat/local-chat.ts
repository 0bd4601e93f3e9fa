// `kvserve chat` with the engine in this process, as `kvserve generate` runs it: the conversation goes
// through the model's chat template, is tokenized without adding special tokens (the template wrote
// them), and the reply streams through the incremental detokenizer.
import { randomUUID } from 'node:crypto';
import { basename, join } from 'node:path';
import { ConfigError, type EngineConfig } from '../config.js';
import { createEngine, type Engine } from '../engine/engine.js';
import type { ProgressFn } from '../load-progress.js';
import { samplingParams, type SamplingFlagValues } from '../sampling-flags.js';
import { ChatTemplate, ChatTemplateError } from '../tokenizer/chat-template.js';
import { IncrementalDetokenizer } from '../tokenizer/detokenizer.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { ChatError, type ChatBackend, type ChatMessage } from './chat-backend.js';

export interface LocalChatConfig extends EngineConfig, SamplingFlagValues {
  chatTemplate: string; // a file overriding the model's template; '' = the model's
}

export class LocalChat implements ChatBackend {
  readonly description: string;

  private constructor(
    private readonly engine: Engine,
    private readonly tokenizer: TextTokenizer,
    private readonly template: ChatTemplate,
    private readonly sampling: SamplingFlagValues,
    name: string,
  ) {
    const i = engine.info;
    this.description = `${name} on ${i.device} (${i.dtype}), context ${i.maxModelLen} tokens`;
  }

  static async open(config: LocalChatConfig, progress: ProgressFn | undefined): Promise<LocalChat> {
    const tokenizer = await TextTokenizer.forModel(config.tokenizer, {
      dummy: config.loadFormat === 'dummy',
      configPath: config.model.endsWith('.json') ? config.model : join(config.model, 'config.json'),
      log: (m) => console.error(`kvserve: ${m}`),
    });
    const template = loadTemplate(config, tokenizer);
    const engine = await createEngine(config, undefined, progress);
    const name = basename(config.model).replace(/\.json$/, '');
    return new LocalChat(engine, tokenizer, template, config, name);
  }

  measure(messages: ChatMessage[]): { promptTokens: number; contextTokens: number } {
    return { promptTokens: this.promptIds(messages).length, contextTokens: this.engine.info.maxModelLen };
  }

  async *reply(messages: ChatMessage[], signal: AbortSignal): AsyncGenerator<string> {
    const ids = this.promptIds(messages);
    const room = this.engine.info.maxModelLen - ids.length;
    if (room < 1)
      throw new ChatError(`the conversation is ${ids.length} tokens, the whole context: /reset starts over`);
    const id = randomUUID();
    const abort = () => this.engine.client.abort(id);
    signal.addEventListener('abort', abort);
    try {
      const detok = new IncrementalDetokenizer(this.tokenizer, ids);
      for await (const out of this.engine.client.submit({
        id,
        promptTokenIds: ids,
        sampling: samplingParams(this.sampling, room),
      })) {
        let piece = detok.push(out.newTokenIds);
        if (out.finished) piece += detok.flush();
        if (piece) yield piece;
        if (out.finished && out.finishReason === 'error')
          throw new ChatError(`engine error: ${out.error ?? 'unknown'}`);
      }
    } finally {
      signal.removeEventListener('abort', abort);
      if (!signal.aborted) abort(); // the caller stopped reading early: free the request's KV blocks
    }
  }

  close(): Promise<void> {
    return this.engine.close();
  }

  private promptIds(messages: ChatMessage[]): number[] {
    try {
      return this.tokenizer.encode(this.template.render(messages, { addGenerationPrompt: true }), false);
    } catch (e) {
      if (e instanceof ChatTemplateError) throw new ChatError(e.message);
      throw e;
    }
  }
}

function loadTemplate(config: LocalChatConfig, tokenizer: TextTokenizer): ChatTemplate {
  try {
    if (config.chatTemplate) return ChatTemplate.fromFile(config.chatTemplate, tokenizer.specialTokens);
  } catch (e) {
    throw new ConfigError(`--chat-template: ${(e as Error).message}`);
  }
  if (tokenizer.chatTemplate === undefined) {
    throw new ConfigError(
      `${config.tokenizer} has no chat template: give one with --chat-template FILE (or use kvserve generate)`,
    );
  }
  try {
    return new ChatTemplate(tokenizer.chatTemplate, tokenizer.specialTokens);
  } catch (e) {
    throw new ConfigError(`the model's ${(e as Error).message}: give another with --chat-template FILE`);
  }
}
