// From a validated request body to engine requests: sampling parameters, the checks JSON Schema cannot
// express (token ids against the vocabulary, lengths against the context), and a 400 for every known
// feature kvserve does not implement — never silence.
import type { SamplingParams } from '../engine/types.js';
import { ApiError, invalid, unsupported } from './errors.js';
import type { ChoiceSpec, TextOptions } from './generation.js';
import type { SamplingBody } from './schemas/sampling.js';

export interface RequestSettings {
  sampling: Omit<SamplingParams, 'maxTokens'>;
  requestedMaxTokens: number | undefined;
  maxTokensParam: string;
  n: number;
  priority: number | undefined;
  text: TextOptions;
  stream: boolean;
  includeUsage: boolean;
}

const isSet = (v: unknown) => v !== undefined && v !== null;

export function rejectUnsupported(body: SamplingBody): void {
  const tools = body.tools;
  if (isSet(tools) && !(Array.isArray(tools) && tools.length === 0)) throw unsupported('tools', 'tool calling (tools)');
  const toolChoice = body.tool_choice;
  if (isSet(toolChoice) && toolChoice !== 'none' && toolChoice !== 'auto') throw unsupported('tool_choice', 'tool_choice');
  if (isSet(body.functions) && !(Array.isArray(body.functions) && body.functions.length === 0)) {
    throw unsupported('functions', 'function calling (functions)');
  }
  if (isSet(body.function_call) && body.function_call !== 'none' && body.function_call !== 'auto') {
    throw unsupported('function_call', 'function_call');
  }
  const format = body.response_format as { type?: unknown } | null | undefined;
  if (isSet(format) && format?.type !== 'text') {
    throw unsupported('response_format', `response_format of type ${JSON.stringify(format?.type ?? format)}`);
  }
  if (isSet(body.suffix) && body.suffix !== '') throw unsupported('suffix', 'suffix (insertion)');
  for (const key of ['guided_json', 'guided_regex', 'guided_choice', 'guided_grammar'] as const) {
    if (isSet(body[key])) throw unsupported(key, `guided decoding (${key})`);
  }
  if (isSet(body.prompt_logprobs)) throw unsupported('prompt_logprobs', 'prompt_logprobs');
  if (isSet(body.audio)) throw unsupported('audio', 'audio output');
  if (isSet(body.prediction)) throw unsupported('prediction', 'predicted outputs (prediction)');
  if (isSet(body.best_of) && body.best_of !== (body.n ?? 1)) throw unsupported('best_of', 'best_of other than n');
}

export function parseSettings(
  body: SamplingBody,
  opts: { maxTokens: number | null | undefined; maxTokensParam: string; logprobs: number | null; vocabSize: number },
): RequestSettings {
  rejectUnsupported(body);
  // The engine samples in float32: a positive value that rounds to 0 there is not in the open range.
  for (const [param, v] of [['top_p', body.top_p], ['repetition_penalty', body.repetition_penalty]] as const) {
    if (isSet(v) && !(Math.fround(v!) > 0)) throw invalid(`invalid '${param}': ${v} is 0 in float32; it must be > 0`, param);
  }
  const checkId = (id: number, param: string) => {
    if (id >= opts.vocabSize) throw invalid(`token id ${id} is out of range (vocabulary size ${opts.vocabSize})`, param);
  };
  let logitBias: Record<number, number> | undefined;
  if (body.logit_bias && Object.keys(body.logit_bias).length > 0) {
    logitBias = {};
    for (const [key, value] of Object.entries(body.logit_bias)) {
      if (!/^\d+$/.test(key)) throw invalid(`logit_bias keys must be token ids, got "${key}"`, 'logit_bias');
      checkId(Number(key), 'logit_bias');
      logitBias[Number(key)] = value;
    }
  }
  const stopTokenIds = body.stop_token_ids ?? [];
  stopTokenIds.forEach((id) => checkId(id, 'stop_token_ids'));
  const minTokens = body.min_tokens ?? 0;
  if (isSet(opts.maxTokens) && minTokens > opts.maxTokens!) {
    throw invalid(`min_tokens (${minTokens}) must not exceed ${opts.maxTokensParam} (${opts.maxTokens})`, 'min_tokens');
  }
  const stop = body.stop ?? [];
  const stream = body.stream ?? false;
  if (!stream && isSet(body.stream_options)) throw invalid('stream_options is only allowed when stream is true', 'stream_options');
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
      logprobs: opts.logprobs,
    },
    requestedMaxTokens: opts.maxTokens ?? undefined,
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
  };
}

/** The generation budget of one prompt: what was asked, or by default everything that fits the context. */
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
  return s.requestedMaxTokens ?? room;
}

/** n choices per prompt, prompt-major (index = prompt * n + i). Each choice gets its own seed. */
export function expandChoices(prompts: number[][], s: RequestSettings, maxModelLen: number, promptParam: string): ChoiceSpec[] {
  const choices: ChoiceSpec[] = [];
  for (const promptIds of prompts) {
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
