// `kvserve generate`: one prompt through the same engine loop the server uses, text streamed to stdout.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { applyEngineFlags } from './build/engine-flags.js';
import { renderHelp } from './cli-help.js';
import {
  ConfigError,
  engineDefaults,
  engineFlags,
  finishEngineConfig,
  parseFlags,
  type EngineConfig,
} from './config.js';
import { createEngine } from './engine/engine.js';
import { resolveHubModels } from './hub/resolve-model.js';
import { stderrProgress } from './load-progress.js';
import { samplingFlags, samplingParams, type SamplingFlagValues } from './sampling-flags.js';
import { IncrementalDetokenizer } from './tokenizer/detokenizer.js';
import { TextTokenizer } from './tokenizer/tokenizer.js';

interface GenerateConfig extends EngineConfig, SamplingFlagValues {
  prompt: string;
  ignoreEos: boolean;
  json: boolean;
  quiet: boolean;
}

export const generateFlags = {
  ...engineFlags,
  prompt: { key: 'prompt', kind: 'string', metavar: 'TEXT', help: 'the prompt (required)' },
  ...samplingFlags,
  'ignore-eos': { key: 'ignoreEos', kind: 'boolean', help: 'keep generating past the end-of-sequence token' },
  json: {
    key: 'json',
    kind: 'boolean',
    help: 'print one JSON line {prompt_ids, output_ids, text} instead of streaming',
  },
  quiet: { key: 'quiet', kind: 'boolean', help: 'no loading progress on stderr' },
} as const;

export const generateDefaults = (): GenerateConfig => ({
  ...engineDefaults(),
  prompt: '',
  maxTokens: 256,
  temperature: 0,
  topP: 1,
  topK: -1,
  minP: 0,
  samplingSeed: -1,
  ignoreEos: false,
  json: false,
  quiet: false,
});

export const generateHelp = () =>
  renderHelp({
    usage: 'kvserve generate --prompt TEXT [options]',
    summary: 'Generates text for one prompt with the engine in this process (no server) and prints it as it comes.',
    flags: generateFlags,
    defaults: generateDefaults(),
    examples: [
      'kvserve generate --prompt "Once upon a time" --max-tokens 64',
      'kvserve generate --model DIR --prompt "The capital of France is" --temperature 0.7 --seed 1 --json',
      'kvserve generate --engine ENGINE_DIR --prompt "Once upon a time"',
    ],
  });

export async function runGenerateCli(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(generateHelp());
    return 0;
  }
  const { config: parsed, rest } = parseFlags<GenerateConfig>(argv, generateFlags, generateDefaults());
  if (rest.length > 0) throw new ConfigError(`unexpected argument "${rest[0]}" (the prompt goes after --prompt)`);
  if (!argv.some((a) => a === '--prompt' || a.startsWith('--prompt='))) throw new ConfigError('--prompt is required');
  const quiet = parsed.quiet || parsed.json;
  const config = await applyEngineFlags(finishEngineConfig(await resolveHubModels(parsed, { progress: !quiet })), {
    progress: quiet ? undefined : stderrProgress('building: '),
    log: (m) => {
      if (!quiet) console.error(m);
    },
  });

  const tokenizer = await TextTokenizer.forModel(config.tokenizer, {
    dummy: config.loadFormat === 'dummy',
    configPath: config.model.endsWith('.json') ? config.model : join(config.model, 'config.json'),
    log: (m) => console.error(m),
  });
  const promptIds = tokenizer.encode(config.prompt);
  if (promptIds.length === 0) throw new ConfigError('the prompt is empty after tokenization');

  const progress = config.quiet || config.json ? undefined : stderrProgress();
  const engine = await createEngine(config, undefined, progress);
  try {
    const contextLeft = engine.info.maxModelLen - promptIds.length;
    if (contextLeft < 1) {
      throw new ConfigError(
        `the prompt is ${promptIds.length} tokens; the model's context is ${engine.info.maxModelLen} tokens`,
      );
    }
    const sampling = samplingParams(config, contextLeft, config.ignoreEos);
    const detok = new IncrementalDetokenizer(tokenizer, promptIds);
    const outputIds: number[] = [];
    let text = '';
    for await (const out of engine.client.submit({ id: randomUUID(), promptTokenIds: promptIds, sampling })) {
      outputIds.push(...out.newTokenIds);
      let piece = detok.push(out.newTokenIds);
      if (out.finished) piece += detok.flush();
      text += piece;
      if (!config.json && piece) process.stdout.write(piece);
      if (out.finished && out.finishReason === 'error') throw new Error(`engine error: ${out.error ?? 'unknown'}`);
    }
    if (config.json) {
      process.stdout.write(`${JSON.stringify({ prompt_ids: promptIds, output_ids: outputIds, text })}\n`);
    } else {
      process.stdout.write('\n');
    }
    return 0;
  } finally {
    await engine.close();
  }
}
