// Chat templates rendered with @huggingface/jinja, against the prompt strings these template formats
// are documented to produce (ChatML, Llama 3), and through the server (--chat-template override).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorBody } from '../../src/server/errors.js';
import type { TokenizeResponse } from '../../src/server/schemas/tokenize.js';
import { ChatTemplate, ChatTemplateError } from '../../src/tokenizer/chat-template.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { expected } from './helpers/stories.js';

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
// Meta-Llama-3-8B-Instruct's template, verbatim.
const LLAMA3 =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
const ALTERNATE =
  "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{{ m['content'] }}{% endfor %}";

const conversation = [
  { role: 'system', content: 'You are helpful.' },
  { role: 'user', content: 'Hi' },
];

describe('ChatTemplate', () => {
  it('renders ChatML with and without the generation prompt', () => {
    const t = new ChatTemplate(CHATML);
    expect(t.render(conversation, { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(t.render(conversation, { addGenerationPrompt: false })).toBe(
      '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n',
    );
  });

  it('renders Llama 3 with its bos_token', () => {
    const t = new ChatTemplate(LLAMA3, { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' });
    expect(t.render(conversation, { addGenerationPrompt: true })).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('continues a final assistant message (continue_final_message)', () => {
    const t = new ChatTemplate(CHATML);
    const msgs = [...conversation, { role: 'assistant', content: 'Hello, I am' }];
    expect(t.render(msgs, { addGenerationPrompt: false, continueFinalMessage: true })).toBe(
      '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello, I am',
    );
  });

  it('turns raise_exception and syntax errors into ChatTemplateError', () => {
    expect(() =>
      new ChatTemplate(ALTERNATE).render([{ role: 'assistant', content: 'x' }], { addGenerationPrompt: true }),
    ).toThrow(/roles must alternate/);
    expect(() => new ChatTemplate('{% for %}')).toThrow(ChatTemplateError);
  });
});

describe('chat templates through the server', () => {
  let chatml: TestServer;
  beforeAll(async () => {
    chatml = await startTestServer({ chatTemplate: CHATML });
  });
  afterAll(() => chatml.close());

  const post = (s: TestServer, path: string, body: unknown) =>
    fetch(s.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it("stories260K's own template gives transformers' prompt ids (tokenized without special tokens)", async () => {
    const s = await startTestServer();
    try {
      const r = await post(s, '/tokenize', { messages: [{ role: 'user', content: expected[0]!.prompt }] });
      expect(((await r.json()) as TokenizeResponse).tokens).toEqual(expected[0]!.prompt_ids);
      await post(s, '/v1/chat/completions', {
        messages: [{ role: 'user', content: expected[2]!.prompt }],
        max_tokens: 1,
      });
      expect(s.engine.submitted.at(-1)!.promptTokenIds).toEqual(expected[2]!.prompt_ids);
    } finally {
      await s.close();
    }
  });

  it('an override template reaches the engine as its tokenized rendering; text parts are joined', async () => {
    const messages = [
      { role: 'developer', content: 'You are helpful.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Hi' },
          { type: 'text', text: 'there' },
        ],
      },
    ];
    const res = await post(chatml, '/v1/chat/completions', { messages, max_tokens: 2 });
    expect(res.status).toBe(200);
    // "developer" is shown to templates as "system".
    const want =
      '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi\nthere<|im_end|>\n<|im_start|>assistant\n';
    expect(chatml.engine.submitted.at(-1)!.promptTokenIds).toEqual(chatml.tokenizer.encode(want, false));
  });

  it('a template error is a 400 chat_template_error', async () => {
    const s = await startTestServer({ chatTemplate: ALTERNATE });
    try {
      const r = await post(s, '/v1/chat/completions', { messages: [{ role: 'assistant', content: 'x' }] });
      expect(r.status).toBe(400);
      expect(((await r.json()) as ErrorBody).error).toMatchObject({ code: 'chat_template_error', param: 'messages' });
    } finally {
      await s.close();
    }
  });
});
