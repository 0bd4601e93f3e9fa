// `kvserve generate`: one prompt through the same engine loop the server uses, text streamed to stdout.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ConfigError, engineDefaults, engineFlags, finishEngineConfig, formatHelp, parseFlags, type EngineConfig } from './config.js';
import { createEngine } from './engine/engine.js';
import type { SamplingParams } from './engine/types.js';
import { stderrProgress } from './load-progress.js';
import { IncrementalDetokenizer } from './tokenizer/detokenizer.js';
import { TextTokenizer } from './tokenizer/tokenizer.js';

interface GenerateConfig extends EngineConfig {
  prompt: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  samplingSeed: number;        // -1 = random
  ignoreEos: boolean;
  json: boolean;
  quiet: boolean;
}

const generateFlags = {
  ...engineFlags,
  prompt: { key: 'prompt', kind: 'string', help: 'the prompt (required)' },
  'max-tokens': { key: 'maxTokens', kind: 'int', min: 1, max: 2 ** 31 - 1, help: 'tokens to generate at most (default 256, clamped to the context)' },
  temperature: { key: 'temperature', kind: 'number', min: 0, max: 2, help: '0 = greedy (default 0)' },
  'top-p': { key: 'topP', kind: 'number', min: 0.000001, max: 1, help: 'nucleus sampling (default 1)' },
  'top-k': { key: 'topK', kind: 'int', min: -1, max: 2 ** 31 - 1, help: 'top-k sampling (default off)' },
  'min-p': { key: 'minP', kind: 'number', min: 0, max: 1, help: 'min-p sampling (default off)' },
  seed: { key: 'samplingSeed', kind: 'int', min: -1, max: 4294967295, help: 'seed of the sampler (default random)' },
  'ignore-eos': { key: 'ignoreEos', kind: 'boolean', help: 'keep generating past the end-of-sequence token' },
  json: { key: 'json', kind: 'boolean', help: 'print one JSON line {prompt_ids, output_ids, text} instead of streaming' },
  quiet: { key: 'quiet', kind: 'boolean', help: 'no loading progress on stderr' },
} as const;

export async function runGenerateCli(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(`usage: kvserve generate --prompt TEXT [options]\n\n${formatHelp(generateFlags)}`);
    return 0;
  }
  const { config: parsed, rest } = parseFlags<GenerateConfig>(argv, generateFlags, {
    ...engineDefaults(), device: 'auto', prompt: '', maxTokens: 256, temperature: 0, topP: 1, topK: -1, minP: 0, samplingSeed: -1,
    ignoreEos: false, json: false, quiet: false,
  });
  if (rest.length > 0) throw new ConfigError(`unexpected argument "${rest[0]}" (the prompt goes after --prompt)`);
  if (!argv.some((a) => a === '--prompt' || a.startsWith('--prompt='))) throw new ConfigError('--prompt is required');
  const config = finishEngineConfig(parsed);
  const samplingSeed = config.samplingSeed >= 0 ? config.samplingSeed : undefined;

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
      throw new ConfigError(`the prompt is ${promptIds.length} tokens; the model's context is ${engine.info.maxModelLen} tokens`);
    }
    const sampling: SamplingParams = {
      temperature: config.temperature, topP: config.topP, topK: config.topK, minP: config.minP,
      presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1, seed: samplingSeed,
      maxTokens: Math.min(config.maxTokens, contextLeft), minTokens: 0, stopTokenIds: [], ignoreEos: config.ignoreEos,
      logprobs: null,
    };
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
      process.stdout.write(JSON.stringify({ prompt_ids: promptIds, output_ids: outputIds, text }) + '\n');
    } else {
      process.stdout.write('\n');
    }
    return 0;
  } finally {
    await engine.close();
  }
}
