// `kvserve chat`: an interactive conversation in the terminal, through the model's chat template, the reply
// streamed as it comes. Lines are read with readline; stdin may be a terminal or a pipe (then no prompt is
// drawn, and only the replies go to stdout, each ending in a newline). The engine runs in this process, as
// with `kvserve generate`, unless --base-url names a running server.
import { createInterface } from 'node:readline';
import { applyEngineFlags } from '../build/engine-flags.js';
import { renderHelp } from '../cli-help.js';
import { ConfigError, engineDefaults, engineFlags, finishEngineConfig, parseFlags } from '../config.js';
import { stderrProgress } from '../load-progress.js';
import { samplingFlags } from '../sampling-flags.js';
import { ChatError, type ChatBackend, type ChatMessage } from './chat-backend.js';
import { LocalChat, type LocalChatConfig } from './local-chat.js';
import { RemoteChat } from './remote-chat.js';

interface ChatConfig extends LocalChatConfig {
  system: string;
  baseUrl: string;
  apiKey: string | undefined;
  quiet: boolean;
}

export const chatFlags = {
  ...engineFlags,
  'chat-template': {
    key: 'chatTemplate',
    kind: 'string',
    metavar: 'FILE',
    help: "Jinja chat template file overriding the model's",
  },
  system: { key: 'system', kind: 'string', metavar: 'TEXT', help: 'system prompt at the start of every conversation' },
  ...samplingFlags,
  'base-url': {
    key: 'baseUrl',
    kind: 'string',
    metavar: 'URL',
    help: 'chat with a running server instead of loading the model here',
  },
  'api-key': {
    key: 'apiKey',
    kind: 'string',
    metavar: 'KEY',
    help: 'bearer key for --base-url (default: $KVSERVE_API_KEY or $OPENAI_API_KEY)',
  },
  quiet: { key: 'quiet', kind: 'boolean', help: 'no loading progress and no banner on stderr' },
} as const;

export const chatDefaults = (): ChatConfig => ({
  ...engineDefaults(),
  chatTemplate: '',
  system: '',
  maxTokens: 256,
  temperature: 0.8,
  topP: 0.95,
  topK: -1,
  minP: 0,
  samplingSeed: -1,
  baseUrl: '',
  apiKey: process.env.KVSERVE_API_KEY || process.env.OPENAI_API_KEY || undefined,
  quiet: false,
});

export const chatHelp = () =>
  renderHelp({
    usage: 'kvserve chat [--model DIR | --base-url URL] [options]',
    summary:
      'Chats with a model in the terminal. /reset starts the conversation over, /exit or Ctrl-D leaves, ' +
      'Ctrl-C stops a reply. Conversations longer than the context drop their oldest exchanges.',
    flags: chatFlags,
    defaults: chatDefaults(),
    examples: [
      'kvserve chat                                   # the stories260K demo, in this process',
      'kvserve chat --model DIR --system "You are terse." --temperature 0.7 --max-tokens 512',
      'kvserve chat --base-url http://127.0.0.1:8000 --api-key KEY',
    ],
  });

const COMMANDS = `/reset (or /clear) starts over, /exit (or /quit, /bye, Ctrl-D) leaves, Ctrl-C stops a reply`;

export async function runChatCli(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(chatHelp());
    return 0;
  }
  const { config: parsed, rest } = parseFlags<ChatConfig>(argv, chatFlags, chatDefaults());
  if (rest.length > 0)
    throw new ConfigError(`unexpected argument "${rest[0]}" (type messages once the chat starts; see --help)`);
  let backend: ChatBackend;
  if (parsed.baseUrl) {
    const local = argv
      .filter((a) => a.startsWith('--'))
      .map((a) => a.replace(/^--(no-)?/, '').split('=')[0]!)
      .find((n) => n in engineFlags || n === 'chat-template');
    if (local) throw new ConfigError(`--${local} has no effect with --base-url: the server's model answers`);
    backend = await wrapChatError(() => RemoteChat.open(parsed.baseUrl, parsed.apiKey, parsed));
  } else {
    const config = await applyEngineFlags(finishEngineConfig(parsed), {
      progress: parsed.quiet ? undefined : stderrProgress('building: '),
      log: (m) => {
        if (!parsed.quiet) console.error(m);
      },
    });
    backend = await LocalChat.open(config, config.quiet ? undefined : stderrProgress());
  }
  try {
    await converse(backend, parsed);
  } finally {
    await backend.close();
  }
  return 0;
}

async function converse(backend: ChatBackend, config: ChatConfig): Promise<void> {
  const tty = process.stdin.isTTY === true && process.stdout.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty });
  rl.setPrompt('>>> ');
  const note = (line: string) => process.stderr.write(`${line}\n`);
  const start = (): ChatMessage[] => (config.system ? [{ role: 'system', content: config.system }] : []);
  let history = start();
  let replying: AbortController | undefined;
  // Ctrl-C stops the reply being written; with none, it leaves (as Ctrl-D does).
  rl.on('SIGINT', () => (replying ? replying.abort() : rl.close()));

  if (!config.quiet) note(`kvserve chat: ${backend.description}. ${COMMANDS}.`);
  if (tty) rl.prompt();
  try {
    for await (const line of rl) {
      const input = line.trim();
      if (input.startsWith('/')) {
        const command = input.split(/\s+/, 1)[0]!;
        if (['/exit', '/quit', '/bye'].includes(command)) break;
        if (command === '/reset' || command === '/clear') {
          history = start();
          note('(conversation cleared)');
        } else {
          note(command === '/help' || command === '/?' ? COMMANDS : `unknown command ${command}: ${COMMANDS}`);
        }
      } else if (input) {
        history.push({ role: 'user', content: line });
        dropOldExchanges(backend, history, config.maxTokens, note);
        replying = new AbortController();
        const reply = await streamReply(backend, history, replying.signal);
        replying = undefined;
        if (reply === undefined) history.pop();
        else history.push({ role: 'assistant', content: reply });
      }
      if (tty) rl.prompt();
    }
  } finally {
    rl.close();
  }
}

/** Writes the reply to stdout as it comes and returns it; undefined when it failed (the reason is on stderr). */
async function streamReply(
  backend: ChatBackend,
  history: ChatMessage[],
  signal: AbortSignal,
): Promise<string | undefined> {
  let text = '';
  try {
    for await (const piece of backend.reply(history, signal)) {
      text += piece;
      process.stdout.write(piece);
    }
    process.stdout.write('\n');
    return text;
  } catch (e) {
    if (!(e instanceof ChatError)) throw e;
    if (text) process.stdout.write('\n');
    process.stderr.write(`kvserve: ${e.message}\n`);
    return undefined;
  }
}

/**
 * Keeps the conversation inside the context: while the prompt leaves less room than a reply needs (its
 * --max-tokens, at most a quarter of the context), the oldest exchange (a user turn and its reply) goes.
 * The system prompt and the newest user turn always stay.
 */
function dropOldExchanges(
  backend: ChatBackend,
  history: ChatMessage[],
  maxTokens: number,
  note: (l: string) => void,
): void {
  if (!backend.measure) return;
  let dropped = 0;
  for (;;) {
    const { promptTokens, contextTokens } = backend.measure(history);
    if (promptTokens + Math.min(maxTokens, Math.floor(contextTokens / 4)) <= contextTokens) break;
    const first = history.findIndex((m) => m.role === 'user');
    const next = history.findIndex((m, i) => i > first && m.role === 'user');
    if (first < 0 || next < 0) break; // only the newest turn is left: it gets what room there is
    history.splice(first, next - first);
    dropped++;
  }
  if (dropped > 0) note(`(the ${dropped} oldest exchange${dropped > 1 ? 's' : ''} no longer fit the context: dropped)`);
}

async function wrapChatError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ChatError) throw new ConfigError(e.message);
    throw e;
  }
}
