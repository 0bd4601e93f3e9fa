// Reading calibration text (paragraphs, lines, JSON lines), the refusals of unusable text, and
// --keep-precision's layer patterns.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  MIN_CALIB_TOKENS,
  calibrationTokens,
  defaultCalibData,
  defaultEvalData,
  packSamples,
  readTextSamples,
} from '../../src/build/calibration-data.js';
import { linearLayerNames, resolveKeepPrecision } from '../../src/build/layer-names.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { storiesDir, tempDir } from './engine-helpers.js';

function file(name: string, text: string): string {
  const path = join(tempDir('kvserve-calib-'), name);
  writeFileSync(path, text);
  return path;
}

describe('calibration text', () => {
  test('paragraphs when the text has blank lines, else lines; CRLF and surrounding space ignored', () => {
    expect(readTextSamples(file('a.txt', 'One two.\nthree.\n\n  Four.  \r\n\r\n\r\nFive.\n'), '--calib-data')).toEqual([
      'One two.\nthree.',
      'Four.',
      'Five.',
    ]);
    expect(readTextSamples(file('b.txt', 'one\ntwo\n  \nthree'), '--calib-data')).toEqual(['one\ntwo', 'three']);
    expect(readTextSamples(file('c.txt', 'one\ntwo\nthree\n'), '--calib-data')).toEqual(['one', 'two', 'three']);
  });

  test('.jsonl: one {"text"} per line, blank lines skipped', () => {
    const f = file('d.jsonl', '{"text": "a b"}\n\n{"text": "c", "id": 3}\n');
    expect(readTextSamples(f, '--calib-data')).toEqual(['a b', 'c']);
  });

  test.each([
    ['empty.txt', '', 'holds no text'],
    ['blank.txt', '\n  \n\n', 'holds no text'],
    ['bad.jsonl', '{"text": "a"}\nnot json\n', 'line 2: not JSON (expected {"text": "..."})'],
    ['notext.jsonl', '{"body": "a"}\n', 'line 1: no "text" string'],
  ])('%s is refused in one line', (name, text, message) => {
    const f = file(name, text);
    expect(() => readTextSamples(f, '--calib-data')).toThrow(`--calib-data ${f}`);
    expect(() => readTextSamples(f, '--calib-data')).toThrow(message);
  });

  test('a missing file', () => {
    expect(() => readTextSamples('/nonexistent/calib.txt', '--calib-data')).toThrow(
      '--calib-data /nonexistent/calib.txt: cannot read it (ENOENT)',
    );
  });

  test(`fewer than ${MIN_CALIB_TOKENS} tokens are too short to calibrate on`, async () => {
    const tok = await TextTokenizer.load(storiesDir);
    const f = file('short.txt', 'Once upon a time there was a cat.\n\nThe cat sat on a mat.');
    expect(() => calibrationTokens(tok, f, 128, 512)).toThrow(
      new RegExp(
        `^--calib-data ${f} is too short: \\d+ tokens in 2 samples \\(--calib-samples 128\\); int8 calibration needs at least ${MIN_CALIB_TOKENS}$`,
      ),
    );
    // The shipped set is long enough, and --calib-samples takes the first N of it.
    const all = calibrationTokens(tok, defaultCalibData, 128, 512);
    expect(all.length).toBe(20);
    expect(all.every((s) => s[0] === tok.bosTokenId)).toBe(true);
    expect(() => calibrationTokens(tok, defaultCalibData, 1, 512)).toThrow('is too short');
    expect(readTextSamples(defaultEvalData, '--eval-data').length).toBeGreaterThan(5);
  });

  test('samples packed as tokens + offsets', () => {
    const p = packSamples([[1, 2, 3], [4], [5, 6]]);
    expect([...p.tokens]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...p.offsets]).toEqual([0, 3, 4, 6]);
  });
});

describe('--keep-precision patterns', () => {
  const names = linearLayerNames(3);
  test.each([
    ['lm_head', ['lm_head']],
    ['down_proj', ['model.layers.0.mlp.down_proj', 'model.layers.1.mlp.down_proj', 'model.layers.2.mlp.down_proj']],
    ['layers.1.self_attn.*', ['q', 'k', 'v', 'o'].map((p) => `model.layers.1.self_attn.${p}_proj`)],
    ['model.layers.*.mlp.up_proj, lm_head', [0, 1, 2].map((l) => `model.layers.${l}.mlp.up_proj`).concat('lm_head')],
    ['layers.2.mlp.gate_proj,,', ['model.layers.2.mlp.gate_proj']],
  ])('%s', (list, expected) => {
    expect(resolveKeepPrecision(list, names)).toEqual(expected);
  });

  test.each(['lm_heads', 'layers.3.mlp.down_proj', 'proj', 'mlp'])('"%s" names no layer: refused', (p) => {
    expect(() => resolveKeepPrecision(p, names)).toThrow(
      `--keep-precision: no linear layer of this model is named "${p}" (names: model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj with N < 3, lm_head`,
    );
  });
});
