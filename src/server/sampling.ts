// From a validated request body to engine requests: sampling parameters, the checks JSON Schema cannot
// express (token ids against the vocabulary, lengths against the context), and a 400 for every known
// feature kvserve does not implement — never silence.
import type { SamplingParams } from '../engine/types.js';
import { ApiError, invalid, unsupported } from './errors.js';
import type { ChoiceSpec, TextOptions } from './generation.js';
import { REFUSED, type RefusedField } from './schemas/refused-fields.js';
import type { SamplingBody } from './schemas/sampling.js';

export interface RequestSettings {
  sampling: Omit<SamplingParams, 'maxTokens'>;
  requestedMaxTokens: number | undefined;
  /** The budget when none was asked, capped by the room left in the context; undefined = all of that room. */
  defaultMaxTokens: number | undefined;
  maxTokensParam: string;
  n: number;
  priority: number | undefined;
  text: TextOptions;
  stream: boolean;
  includeUsage: boolean;
  /** stream_options.continuous_usage_stats: every chunk carries the usage so far. */
  continuousUsage: boolean;
  /** Keep only the prompt's last this many tokens (vLLM's truncate_prompt_tokens; -1 = the context). */
  truncatePromptTokens: number | undefined;
}

const isSet = (v: unknown) => v !== undefined && v !== null;

/** Every refused field (schemas/refused-fields.ts) set to anything but its "off" value is a 400 naming it. */
export function rejectUnsupported(body: SamplingBody): void {
  for (const [key, refusal] of Object.entries(REFUSED) as Array<[RefusedField, (typeof REFUSED)[RefusedField]]>) {
    const v = body[key];
    if (isSet(v) && !refusal.off(v)) throw unsupported(key, refusal.what);
  }
  if (isSet(body.best_of) && body.best_of !== (body.n ?? 1)) throw unsupported('best_of', 'best_of other than n');
}

export function parseSettings(
  body: SamplingBody,
  opts: {
    maxTokens: number | null | undefined;
    maxTokensParam: string;
    logprobs: number | null;
    vocabSize: number;
    defaultMaxTokens?: number;
  },
): RequestSettings {
  rejectUnsupported(body);
  checkFloat32(body);
  const checkId = (id: number, param: string) => {
    if (id >= opts.vocabSize)
      throw invalid(`token id ${id} is out of range (vocabulary size ${opts.vocabSize})`, param);
  };
  let logitBias: Record<number, number> | undefined;
  if (body.logit_bias && Object.keys(body.logit_bias).length > 0) {
    logitBias = {};
    for (const [key, value] of Object.entries(body.logit_bias)) {
      // Compared as text first: Number() of a long digit string is inexact (or Infinity).
      if (!/^\d+$/.test(key) || key.replace(/^0+(?=\d)/, '').length > 10 || Number(key) >= opts.vocabSize) {
        throw invalid(
          `logit_bias keys must be token ids below the vocabulary size ${opts.vocabSize}, got "${key}"`,
          'logit_bias',
        );
      }
      logitBias[Number(key)] = value;
    }
  }
  const stopTokenIds = body.stop_token_ids ?? [];
  for (const id of stopTokenIds) checkId(id, 'stop_token_ids');
  const allowedTokenIds = body.allowed_token_ids ?? undefined;
  for (const id of allowedTokenIds ?? []) checkId(id, 'allowed_token_ids');
  if (body.truncate_prompt_tokens === 0)
    throw invalid('truncate_prompt_tokens must be at least 1 (or -1 for the context length)', 'truncate_prompt_tokens');
  const minTokens = body.min_tokens ?? 0;
  if (isSet(opts.maxTokens) && minTokens > opts.maxTokens!) {
    throw invalid(`min_tokens (${minTokens}) must not exceed ${opts.maxTokensParam} (${opts.maxTokens})`, 'min_tokens');
  }
  const stop = body.stop ?? [];
  const stream = body.stream ?? false;
  if (!stream && isSet(body.stream_options))
    throw invalid('stream_options is only allowed when stream is true', 'stream_options');
  return {
    sampling: {
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      topK: body.top_k ?? -1,
      minP: body.min_p ?? 0,
      presencePenalty: body.presence_penalty ?? 0,
      frequencyPenalty: body.frequency_penalty ?? 0,
      repetitionPenalty: body.repetition_penalty ?? 1,
      seed: isSet(body.seed) ? toUint32(body.seed!) : undefined,
      minTokens,
      stopTokenIds,
      ignoreEos: body.ignore_eos ?? false,
      logitBias,
      allowedTokenIds,
      logprobs: opts.logprobs,
    },
    requestedMaxTokens: opts.maxTokens ?? undefined,
    defaultMaxTokens: opts.defaultMaxTokens,
    maxTokensParam: opts.maxTokensParam,
    n: body.n ?? 1,
    priority: body.priority ?? undefined,
    text: {
      stops: typeof stop === 'string' ? [stop] : stop,
      includeStopStr: body.include_stop_str_in_output ?? false,
      skipSpecialTokens: body.skip_special_tokens ?? true,
    },
    stream,
    includeUsage: stream && (body.stream_options?.include_usage ?? false),
    continuousUsage: stream && (body.stream_options?.continuous_usage_stats ?? false),
    truncatePromptTokens: body.truncate_prompt_tokens ?? undefined,
  };
}

/**
 * The engine holds sampling floats as float32, where a double can round to a value outside the range it
 * passed as a double: top_p 1e-320 is > 0, but 0 as a float32, and the engine would refuse the whole batch
 * it is in. Each field is checked as the engine will hold it, against the same range the schema states.
 */
const FLOAT32_RANGES: Array<[keyof SamplingBody & string, number, number, boolean]> = [
  // field, lower bound, upper bound, lower bound exclusive
  ['temperature', 0, 2, false],
  ['top_p', 0, 1, true],
  ['min_p', 0, 1, false],
  ['presence_penalty', -2, 2, false],
  ['frequency_penalty', -2, 2, false],
  ['repetition_penalty', 0, 2, true],
];

function checkFloat32(body: SamplingBody): void {
  const check = (value: number, param: string, lo: number, hi: number, exclusive: boolean) => {
    const f = Math.fround(value);
    if ((exclusive ? f > lo : f >= lo) && f <= hi) return;
    const range = `${exclusive ? '(' : '['}${lo}, ${hi}]`;
    throw invalid(`${param} ${value} is ${f} as the 32-bit float the engine computes with, outside ${range}`, param);
  };
  for (const [field, lo, hi, exclusive] of FLOAT32_RANGES) {
    const v = body[field];
    if (typeof v === 'number') check(v, field, lo, hi, exclusive);
  }
  for (const [key, v] of Object.entries(body.logit_bias ?? {})) check(v, `logit_bias[${key}]`, -100, 100, false);
}

/** The generation budget of one prompt: what was asked, or the route's default (by default everything that
 *  fits the context). */
export function fitMaxTokens(s: RequestSettings, promptLen: number, maxModelLen: number, promptParam: string): number {
  const room = maxModelLen - promptLen;
  if (room <= 0 || (s.requestedMaxTokens !== undefined && s.requestedMaxTokens > room)) {
    const asked = s.requestedMaxTokens === undefined ? '' : ` and ${s.requestedMaxTokens} in the completion`;
    throw new ApiError(
      'context_length_exceeded',
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
        `${promptLen + (s.requestedMaxTokens ?? 0)} tokens (${promptLen} in the prompt${asked}). ` +
        `Please reduce the length of the prompt or of ${s.maxTokensParam}.`,
      room <= 0 ? promptParam : s.maxTokensParam,
    );
  }
  return s.requestedMaxTokens ?? Math.min(s.defaultMaxTokens ?? room, room);
}

/** n choices per prompt, prompt-major (index = prompt * n + i). Each choice gets its own seed. */
export function expandChoices(
  prompts: number[][],
  s: RequestSettings,
  maxModelLen: number,
  promptParam: string,
): ChoiceSpec[] {
  const choices: ChoiceSpec[] = [];
  const keep = s.truncatePromptTokens === -1 ? maxModelLen : s.truncatePromptTokens;
  if (keep !== undefined && keep > maxModelLen) {
    throw invalid(
      `truncate_prompt_tokens (${keep}) must not exceed the model's context length (${maxModelLen})`,
      'truncate_prompt_tokens',
    );
  }
  for (const whole of prompts) {
    // vLLM's truncation keeps the end of the prompt (the part the continuation follows).
    const promptIds = keep !== undefined && whole.length > keep ? whole.slice(-keep) : whole;
    if (promptIds.length === 0) throw invalid('the prompt is empty', promptParam);
    const maxTokens = fitMaxTokens(s, promptIds.length, maxModelLen, promptParam);
    for (let i = 0; i < s.n; i++) {
      const seed = s.sampling.seed === undefined ? undefined : toUint32(s.sampling.seed + i);
      choices.push({ promptIds, sampling: { ...s.sampling, seed, maxTokens }, priority: s.priority });
    }
  }
  return choices;
}

function toUint32(x: number): number {
  return Number(((BigInt(x) % 4294967296n) + 4294967296n) % 4294967296n);
}
