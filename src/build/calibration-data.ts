// Text for int8 and fp8 KV-cache calibration (--calib-data) and for the quality check (--eval-data): a .jsonl
// file holds one {"text": ...} object per line; any other file is plain text, one sample per paragraph
// (blank-line separated) or, when it has no blank lines, one sample per line. The defaults ship in data/calibration/,
// written for kvserve (MIT): simple English stories like those the stories260K demo model learnt from.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, repoRoot } from '../config.js';
import type { TextTokenizer } from '../tokenizer/tokenizer.js';

export const defaultCalibData = join(repoRoot, 'data', 'calibration', 'stories-calib.txt');
export const defaultEvalData = join(repoRoot, 'data', 'calibration', 'stories-heldout.txt');

/** Longest calibration and evaluation sample, in tokens (each is one prefill step of the build). */
const MAX_SAMPLE_TOKENS = 512;

/** A build's sample length: MAX_SAMPLE_TOKENS, or less where the model (maxPositions) or profile is shorter. */
export function sampleMaxLen(maxPositions: number | undefined, maxModelLen: number): number {
  return Math.min(
    MAX_SAMPLE_TOKENS,
    maxPositions ?? MAX_SAMPLE_TOKENS,
    maxModelLen > 0 ? maxModelLen : MAX_SAMPLE_TOKENS,
  );
}

/** Fewer calibration tokens than this cannot say much about a layer's input channels. */
export const MIN_CALIB_TOKENS = 256;

export class CalibrationDataError extends Error {
  override name = 'CalibrationDataError';
}

/** The samples of `file`, in file order; `flag` names the option in messages. */
export function readTextSamples(file: string, flag: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CalibrationDataError(`${flag} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let samples: string[];
  if (file.endsWith('.jsonl')) {
    samples = [];
    for (const [i, line] of text.split('\n').entries()) {
      if (line.trim() === '') continue;
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch {
        throw new CalibrationDataError(`${flag} ${file} line ${i + 1}: not JSON (expected {"text": "..."})`);
      }
      const t = (o as { text?: unknown } | null)?.text;
      if (typeof t !== 'string') {
        throw new CalibrationDataError(`${flag} ${file} line ${i + 1}: no "text" string (expected {"text": "..."})`);
      }
      samples.push(t);
    }
  } else {
    const normalized = text.replace(/\r\n?/g, '\n');
    samples = /\n[ \t]*\n/.test(normalized) ? normalized.split(/\n[ \t]*\n/) : normalized.split('\n');
  }
  samples = samples.map((s) => s.trim()).filter((s) => s.length > 0);
  if (samples.length === 0) throw new CalibrationDataError(`${flag} ${file} holds no text`);
  return samples;
}

/** Token ids of each sample, BOS included as the tokenizer adds it, each cut to maxLen tokens. */
export function tokenizeSamples(tok: TextTokenizer, samples: string[], maxLen: number): number[][] {
  return samples.map((s) => tok.encode(s).slice(0, maxLen)).filter((ids) => ids.length > 1);
}

/** The held-out samples of --eval-data, tokenized; refuses a file with none of two tokens or more. */
export function evalSamples(tok: TextTokenizer, file: string, maxLen: number): number[][] {
  const ids = tokenizeSamples(tok, readTextSamples(file, '--eval-data'), maxLen);
  if (ids.length === 0) throw new ConfigError(`--eval-data ${file} has no sample of two tokens or more`);
  return ids;
}

/** The first `count` samples of the calibration file, tokenized; refuses too little text in one line (`what`
 *  names the calibration in it). */
export function calibrationTokens(
  tok: TextTokenizer,
  file: string,
  count: number,
  maxLen: number,
  what = 'int8 calibration',
): number[][] {
  const ids = tokenizeSamples(tok, readTextSamples(file, '--calib-data').slice(0, count), maxLen);
  const tokens = ids.reduce((n, s) => n + s.length, 0);
  if (tokens < MIN_CALIB_TOKENS) {
    throw new CalibrationDataError(
      `--calib-data ${file} is too short: ${tokens} tokens in ${ids.length} samples (--calib-samples ${count}); ` +
        `${what} needs at least ${MIN_CALIB_TOKENS}`,
    );
  }
  return ids;
}

/** Flat Int32Array + offsets, as buildEngine takes them. */
export function packSamples(samples: number[][]): { tokens: Int32Array; offsets: Int32Array } {
  const offsets = new Int32Array(samples.length + 1);
  for (const [i, s] of samples.entries()) offsets[i + 1] = offsets[i]! + s.length;
  const tokens = new Int32Array(offsets[samples.length]!);
  for (const [i, s] of samples.entries()) tokens.set(s, offsets[i]!);
  return { tokens, offsets };
}
