// The tokenizer pool gives exactly what the tokenizer and template give on the main thread (which match
// transformers: detokenizer.test.ts, chat-template.test.ts), concurrently, and survives a thread dying.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelDir } from '../../src/config.js';
import { ChatTemplate, ChatTemplateError } from '../../src/tokenizer/chat-template.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { inlineLimits, RenderedTooLong, TokenizerPool } from '../../src/tokenizer/tokenizer-pool.js';

const CHATML =
  "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
const spec = {
  dir: defaultModelDir,
  dummy: false,
  configPath: join(defaultModelDir, 'config.json'),
  chatTemplate: CHATML,
};

let tok: TextTokenizer;
let pool: TokenizerPool;
beforeAll(async () => {
  tok = await TextTokenizer.load(defaultModelDir);
  pool = await TokenizerPool.start(spec, 2);
});
afterAll(() => pool.close());

const texts = [
  'Once upon a time',
  '',
  '  two  spaces ',
  'héllo wörld 😀 名前',
  '<s>with a special</s>',
  'Lily and Tom went to the park. They'.repeat(20),
];

describe('TokenizerPool', () => {
  it('encodes exactly as the main thread does, with and without special tokens, many at once', async () => {
    const jobs = texts.flatMap((t) =>
      [true, false].map(async (special) => ({ t, special, ids: await pool.encode(t, special) })),
    );
    for (const { t, special, ids } of await Promise.all(jobs)) expect(ids).toEqual(tok.encode(t, special));
  });

  it('decodes exactly as the main thread does', async () => {
    const ids = [1, 403, 407, 261, 378, 2, 300, 13];
    expect(await pool.decode(ids, false)).toBe(tok.decode(ids, false));
    expect(await pool.decode(ids, true)).toBe(tok.decode(ids, true));
  });

  it('renders the chat template and tokenizes the result without adding special tokens', async () => {
    const template = new ChatTemplate(CHATML, tok.specialTokens);
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Once upon a time' },
    ];
    const got = await pool.renderChat(messages, { addGenerationPrompt: true }, 1 << 20);
    const text = template.render(messages, { addGenerationPrompt: true });
    expect(got).toEqual({ text, ids: tok.encode(text, false) });
  });

  it('a template error is a ChatTemplateError; a rendering over the byte limit is not tokenized', async () => {
    await expect(
      pool.renderChat(
        [{ role: 'user', content: 'x' }],
        { addGenerationPrompt: true, continueFinalMessage: true },
        1000,
      ),
    ).rejects.toBeInstanceOf(ChatTemplateError);
    const long = [{ role: 'user', content: 'a'.repeat(200) }];
    const err = await pool.renderChat(long, { addGenerationPrompt: true }, 100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenderedTooLong);
    expect((err as RenderedTooLong).bytes).toBeGreaterThan(200);
  });

  it('a thread that dies fails only its own jobs, and the pool replaces it', async () => {
    const threads = (pool as unknown as { threads: Array<{ worker: { terminate(): Promise<number> } }> }).threads;
    const victim = threads[0]!.worker;
    await victim.terminate();
    await expect.poll(() => threads.length).toBe(2); // respawned
    await new Promise((r) => setTimeout(r, 50));
    expect(threads.some((t) => t.worker === victim)).toBe(false);
    const again = await Promise.all(texts.map((t) => pool.encode(t, true)));
    for (const [i, ids] of again.entries()) expect(ids).toEqual(tok.encode(texts[i]!, true));
  });

  it('a tokenizer that cannot load fails start() with its reason', async () => {
    await expect(TokenizerPool.start({ ...spec, dir: '/nonexistent' }, 1)).rejects.toThrow(
      /no tokenizer\.json in \/nonexistent/,
    );
  });
});

describe('TokenizerPool with the main thread taking short texts', () => {
  let template: ChatTemplate;
  let mixed: TokenizerPool;
  beforeAll(async () => {
    template = new ChatTemplate(CHATML, tok.specialTokens);
    mixed = await TokenizerPool.start(spec, 1, { tokenizer: tok, template, maxChars: 40, aloneMaxChars: 400 });
  });
  afterAll(() => mixed.close());

  it('encodes texts up to maxChars inline and longer ones on a thread, each exactly as the tokenizer does', async () => {
    const before = { jobs: mixed.jobs, inline: mixed.inlineJobs };
    for (const t of texts) {
      for (const special of [true, false]) expect(await mixed.encode(t, special)).toEqual(tok.encode(t, special));
    }
    const short = texts.filter((t) => t.length <= 40).length;
    expect(short).toBeGreaterThan(0);
    expect(short).toBeLessThan(texts.length);
    expect(mixed.jobs - before.jobs).toBe(2 * texts.length);
    expect(mixed.inlineJobs - before.inline).toBe(2 * short);
  });

  it('takes texts up to aloneMaxChars inline for the only request in flight, the same ids as on a thread', async () => {
    const medium = ['Lily and Tom went to the park. They'.repeat(2), 'héllo wörld 😀 名前 '.repeat(10)];
    for (const t of medium) expect(t.length > 40 && t.length <= 400).toBe(true);
    const long = 'Lily and Tom went to the park. They'.repeat(12);
    expect(long.length).toBeGreaterThan(400);
    const { jobs, inlineJobs } = mixed;
    for (const t of medium) {
      expect(await mixed.encode(t, true)).toEqual(tok.encode(t, true));
      expect(await mixed.encode(t, true, { alone: true })).toEqual(tok.encode(t, true));
    }
    expect(await mixed.encode(long, true, { alone: true })).toEqual(tok.encode(long, true));
    const chat = [{ role: 'user', content: medium[0]! }];
    const text = template.render(chat, { addGenerationPrompt: true });
    expect(await mixed.renderChat(chat, { addGenerationPrompt: true }, 1 << 20, { alone: true })).toEqual({
      text,
      ids: tok.encode(text, false),
    });
    expect(mixed.jobs - jobs).toBe(2 * medium.length + 2);
    expect(mixed.inlineJobs - inlineJobs).toBe(medium.length + 1); // alone, and not longer than 400 characters
  });

  it('renders short chats inline with the same text, ids and errors as a thread', async () => {
    const messages = [{ role: 'user', content: 'Once upon a time' }];
    const inline = mixed.inlineJobs;
    const text = template.render(messages, { addGenerationPrompt: true });
    expect(await mixed.renderChat(messages, { addGenerationPrompt: true }, 1 << 20)).toEqual({
      text,
      ids: tok.encode(text, false),
    });
    await expect(
      mixed.renderChat(messages, { addGenerationPrompt: true, continueFinalMessage: true }, 1000),
    ).rejects.toBeInstanceOf(ChatTemplateError);
    const err = await mixed.renderChat(messages, { addGenerationPrompt: true }, 10).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenderedTooLong);
    expect(mixed.inlineJobs - inline).toBe(3);
    // the same three on a thread (a long message)
    const long = [{ role: 'user', content: 'Once upon a time, '.repeat(5) }];
    const longText = template.render(long, { addGenerationPrompt: true });
    expect(await mixed.renderChat(long, { addGenerationPrompt: true }, 1 << 20)).toEqual({
      text: longText,
      ids: tok.encode(longText, false),
    });
    expect(mixed.inlineJobs - inline).toBe(3);
  });

  it('the limits, timed on this machine, are what this tokenizer encodes in a fraction of a millisecond', () => {
    const { maxChars, aloneMaxChars } = inlineLimits(tok);
    expect(Number.isInteger(maxChars) && Number.isInteger(aloneMaxChars)).toBe(true);
    expect(maxChars).toBeGreaterThanOrEqual(0);
    expect(aloneMaxChars).toBeGreaterThanOrEqual(maxChars);
    expect(aloneMaxChars).toBeLessThanOrEqual(16384);
  });
});
