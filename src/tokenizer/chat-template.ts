// Chat templates: the model's Jinja template (tokenizer_config.json or chat_template.jinja, or a file
// given with --chat-template) rendered with @huggingface/jinja, as transformers' apply_chat_template does.
// The rendered text already holds the template's special tokens (e.g. {{ bos_token }}), so callers
// tokenize it WITHOUT adding special tokens again.
import { readFileSync } from 'node:fs';
import { Template } from '@huggingface/jinja';
import type { SpecialTokens } from './tokenizer.js';

/** One message as the template sees it: content already flattened to a string (or null). */
export interface TemplateMessage {
  role: string;
  content: string | null;
  name?: string;
  tool_calls?: unknown;
  tool_call_id?: string;
}

export interface RenderOptions {
  addGenerationPrompt: boolean;
  /** Leave the last (assistant) message open so the model continues it (vLLM's continue_final_message). */
  continueFinalMessage?: boolean;
  /** Extra variables for the template (vLLM's chat_template_kwargs, e.g. enable_thinking). */
  extra?: Record<string, unknown>;
}

export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

export class ChatTemplate {
  private readonly template: Template;

  /** Throws ChatTemplateError when the source does not parse. */
  constructor(
    readonly source: string,
    private readonly specialTokens: SpecialTokens = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`chat template does not parse: ${(e as Error).message}`);
    }
  }

  static fromFile(path: string, specialTokens: SpecialTokens = {}): ChatTemplate {
    return new ChatTemplate(readFileSync(path, 'utf8'), specialTokens);
  }

  /** Renders messages to the prompt text. Template errors (including raise_exception) throw ChatTemplateError. */
  render(messages: TemplateMessage[], opts: RenderOptions): string {
    if (opts.continueFinalMessage && opts.addGenerationPrompt) {
      throw new ChatTemplateError('continue_final_message and add_generation_prompt cannot both be true');
    }
    const last = messages[messages.length - 1];
    if (opts.continueFinalMessage && last?.role !== 'assistant') {
      throw new ChatTemplateError('continue_final_message needs the last message to be from the assistant');
    }
    let text: string;
    try {
      text = this.template.render({
        ...opts.extra,
        ...this.specialTokens,
        messages,
        add_generation_prompt: opts.addGenerationPrompt,
      });
    } catch (e) {
      throw new ChatTemplateError(`chat template failed: ${(e as Error).message}`);
    }
    if (opts.continueFinalMessage && last?.content) {
      // As transformers does: cut everything the template appended after the final message's content.
      const end = text.lastIndexOf(last.content.trim());
      if (end >= 0) text = text.slice(0, end + last.content.trim().length);
    }
    return text;
  }
}
