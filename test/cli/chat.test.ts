// `kvserve chat` as a user runs it: a real process with piped stdin. Replies are compared with greedy
// generation of the templated conversation through the engine in this process (and the first turn with
// transformers' own greedy text in expected.json), so the CLI's template, tokenization, streaming and
// history are what is under test.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { engineDefaults, finishEngineConfig, repoRoot, serverDefaults } from '../../src/config.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { startServe, type ServeHandle } from '../../src/server/serve-cli.js';
import { ChatTemplate, type TemplateMessage } from '../../src/tokenizer/chat-template.js';
import { IncrementalDetokenizer } from '../../src/tokenizer/detokenizer.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { expected, storiesDir } from '../server/helpers/stories.js';

const tsx = join(repoRoot, 'node_modules', '.bin', 'tsx');
const cli = join(repoRoot, 'src', 'cli.ts');
const MAX_TOKENS = 80; // expected.json's greedy length
const once = expected.find((e) => e.prompt === 'Once upon a time')!;

let engine: Engine;
let tokenizer: TextTokenizer;
let template: ChatTemplate;

beforeAll(async () => {
  tokenizer = await TextTokenizer.load(storiesDir);
  template = new ChatTemplate(tokenizer.chatTemplate!, tokenizer.specialTokens);
  engine = await createEngine(finishEngineConfig({ ...engineDefaults(), device: 'cpu', threads: 1 }));
});
afterAll(() => engine?.close());

/** The reference reply: the templated conversation, greedy, through the engine and the detokenizer. */
async function greedyReply(
  messages: TemplateMessage[],
  maxTokens = MAX_TOKENS,
  contextLen = engine.info.maxModelLen,
): Promise<string> {
  const ids = promptIds(messages);
  const detok = new IncrementalDetokenizer(tokenizer, ids);
  const sampling = {
    temperature: 0,
    topP: 1,
    topK: -1,
    minP: 0,
    presencePenalty: 0,
    frequencyPenalty: 0,
    repetitionPenalty: 1,
    maxTokens: Math.min(maxTokens, contextLen - ids.length),
    minTokens: 0,
    stopTokenIds: [],
    ignoreEos: false,
    logprobs: null,
  };
  let text = '';
  for await (const out of engine.client.submit({ id: randomUUID(), promptTokenIds: ids, sampling })) {
    text += detok.push(out.newTokenIds) + (out.finished ? detok.flush() : '');
  }
  return text;
}

const promptIds = (messages: TemplateMessage[]) =>
  tokenizer.encode(template.render(messages, { addGenerationPrompt: true }), false);

/** Runs `kvserve chat`, writes `input`, and (with `end`) closes stdin; resolves when the process exits. */
function chat(
  args: string[],
  input: string,
  end: boolean,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(tsx, [cli, 'chat', ...args], {
    cwd: repoRoot,
    env: { ...process.env, KVSERVE_API_KEY: '', OPENAI_API_KEY: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const kill = setTimeout(() => child.kill('SIGKILL'), 50_000);
  child.stdin.write(input);
  if (end) child.stdin.end();
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(kill);
      child.stdin.destroy();
      resolve({ code, stdout, stderr });
    }),
  );
}

const local = ['--device', 'cpu', '--threads', '1', '--temperature', '0', '--max-tokens', String(MAX_TOKENS)];

describe('kvserve chat with the engine in-process (stories260K)', () => {
  test('a conversation: two turns, /reset, the same first reply again, /exit leaves with stdin still open', async () => {
    const r = await chat(local, 'Once upon a time\nThe end.\n/reset\nOnce upon a time\n/exit\nnever answered\n', false);
    expect(r.code, r.stderr).toBe(0);
    const first = await greedyReply([{ role: 'user', content: once.prompt }]);
    // The template ("{{ bos_token }}" + contents) gives transformers' prompt, so the first reply is its greedy text.
    expect(
      tokenizer.encode(template.render([{ role: 'user', content: once.prompt }], { addGenerationPrompt: true }), false),
    ).toEqual(once.prompt_ids);
    expect(first.trimStart()).toBe(once.greedy_text);
    const second = await greedyReply([
      { role: 'user', content: once.prompt },
      { role: 'assistant', content: first },
      { role: 'user', content: 'The end.' },
    ]);
    expect(second).not.toBe(first);
    expect(r.stdout).toBe(`${first}\n${second}\n${first}\n`);
    expect(r.stderr).toContain('conversation cleared');
  });

  test('--system goes first; end of input (Ctrl-D) ends the chat after the last reply', async () => {
    const r = await chat([...local, '--system', 'Lily and Tom'], 'went to the park', true);
    expect(r.code, r.stderr).toBe(0);
    const reply = await greedyReply([
      { role: 'system', content: 'Lily and Tom' },
      { role: 'user', content: 'went to the park' },
    ]);
    expect(reply.length).toBeGreaterThan(0);
    expect(r.stdout).toBe(`${reply}\n`);
  });

  test('a conversation past the context drops its oldest exchanges, keeping room for a reply', async () => {
    const context = 128,
      maxTokens = 40;
    const turns = ['Once upon a time', 'The end.', 'Lily', 'Tom', 'The dog'];
    const r = await chat(
      [
        '--device',
        'cpu',
        '--threads',
        '1',
        '--temperature',
        '0',
        '--max-tokens',
        String(maxTokens),
        '--max-model-len',
        String(context),
      ],
      turns.map((t) => `${t}\n`).join(''),
      true,
    );
    expect(r.code, r.stderr).toBe(0);
    // The rule, restated: before each reply, whole exchanges go (oldest first) until the prompt leaves
    // min(--max-tokens, context / 4) tokens free.
    const history: TemplateMessage[] = [];
    let transcript = '';
    let dropped = 0;
    for (const turn of turns) {
      history.push({ role: 'user', content: turn });
      while (promptIds(history).length + Math.min(maxTokens, context / 4) > context && history.length > 1) {
        history.splice(0, 2);
        dropped++;
      }
      const reply = await greedyReply(history, maxTokens, context);
      history.push({ role: 'assistant', content: reply });
      transcript += `${reply}\n`;
    }
    expect(dropped).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/oldest exchange.* no longer fit the context/);
    expect(r.stdout).toBe(transcript);
  });

  test('unknown commands are answered on stderr and do not reach the model', async () => {
    const r = await chat([...local, '--quiet'], '/frobnicate\n', true);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/unknown command \/frobnicate: \/reset/);
  });
});

describe('kvserve chat --base-url (a running server)', () => {
  let server: ServeHandle;
  beforeAll(async () => {
    server = await startServe(
      finishEngineConfig({
        ...serverDefaults(),
        device: 'cpu',
        port: 0,
        threads: 1,
        logLevel: 'silent',
        apiKey: 'sekret',
      }),
    );
    await server.ready;
  });
  afterAll(() => server?.close());

  test('streams the same greedy reply from /v1/chat/completions', async () => {
    const r = await chat(
      ['--base-url', server.url, '--api-key', 'sekret', '--temperature', '0', '--max-tokens', String(MAX_TOKENS)],
      `${once.prompt}\n`,
      true,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${await greedyReply([{ role: 'user', content: once.prompt }])}\n`);
    expect(r.stderr).toContain(`stories260K at ${server.url}`);
  });

  test('a wrong key, an unreachable server and local-only flags are one clear line and exit 1', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--base-url', server.url, '--api-key', 'wrong'], /^kvserve: .*\/v1\/models: incorrect API key/],
      [['--base-url', 'http://127.0.0.1:9'], /^kvserve: cannot reach http:\/\/127\.0\.0\.1:9/],
      [['--base-url', server.url, '--model', storiesDir], /^kvserve: --model has no effect with --base-url/],
    ];
    for (const [args, message] of cases) {
      const r = await chat(args, '', true);
      expect(r.code).toBe(1);
      const lines = r.stderr.split('\n').filter((l) => l.trim());
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(message);
    }
  });
});
