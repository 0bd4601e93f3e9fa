// The tokenizer pool gives exactly what the tokenizer and template give on the main thread (which match
// transformers: detokenizer.test.ts, chat-template.test.ts), concurrently, and survives a thread dying.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelDir } from '../../src/config.js';
import { ChatTemplate, ChatTemplateError } from '../../src/tokenizer/chat-template.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { RenderedTooLong, TokenizerPool } from '../../src/tokenizer/tokenizer-pool.js';

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
