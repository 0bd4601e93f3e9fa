// The served model, which is not there yet while it loads: the server listens first (so /health can
// answer 503 during loading) and the slot is filled once the engine is up.
import type { EngineClient, EngineStats } from '../engine/types.js';
import type { ChatTemplate } from '../tokenizer/chat-template.js';
import type { TextTokenizer } from '../tokenizer/tokenizer.js';
import type { TokenizerPool } from '../tokenizer/tokenizer-pool.js';
import { ApiError } from './errors.js';

export interface LoadedModel {
  client: EngineClient;
  /** On the main thread: incremental detokenization and token texts, cheap per token. */
  tokenizer: TextTokenizer;
  /** Off the main thread: prompt tokenization and chat-template rendering. */
  prompts: TokenizerPool;
  /** Longer prompt text (UTF-8 bytes) is refused before tokenizing (prompt-bound.ts). */
  maxPromptBytes: number;
  /** undefined when the model has none and no --chat-template was given (chat requests get a 400). */
  chatTemplate: ChatTemplate | undefined;
  maxModelLen: number;
  vocabSize: number;
  /** The engine's --max-num-seqs: the most sequences (prompts × n) one request may ask for. */
  maxNumSeqs: number;
  /** --tool-call-parser: the format of tool calls; absent = auto (from the chat template). */
  toolCallParser?: 'auto' | 'hermes' | 'llama3_json' | 'mistral';
}

export class ModelSlot {
  private model: LoadedModel | undefined;
  private stepObserver: ((numTokens: number) => void) | undefined;
  stage = 'starting';
  fraction = 0;
  /** Unix seconds; what /v1/models reports as `created`. */
  readonly created = Math.floor(Date.now() / 1000);

  constructor(model?: LoadedModel) {
    this.model = model;
    if (model) this.ready(model);
  }

  get loaded(): LoadedModel | undefined {
    return this.model;
  }

  progress(stage: string, fraction: number): void {
    this.stage = stage;
    this.fraction = fraction;
  }

  ready(model: LoadedModel): void {
    this.model = model;
    this.stage = 'ready';
    this.fraction = 1;
    if (this.stepObserver) model.client.onStep = this.stepObserver;
  }

  /** Sees every engine step's token count, of the model there now and of the one that loads later. */
  observeSteps(fn: (numTokens: number) => void): void {
    this.stepObserver = fn;
    if (this.model) this.model.client.onStep = fn;
  }

  /** The model, or a 503 with Retry-After while it loads. */
  require(): LoadedModel {
    if (!this.model) {
      throw new ApiError(
        'model_loading',
        `the model is still loading (${this.stage}, ${Math.round(this.fraction * 100)}%)`,
        null,
        5,
      );
    }
    return this.model;
  }

  stats(): EngineStats | undefined {
    return this.model?.client.stats();
  }
}
