// An int8 engine that is damaged or made for another kvserve is refused at load in one line; an int8 build
// with unusable input is refused before anything is written.
import { cpSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { buildEngineFolder } from '../../src/build/build-engine.js';
import { int8Defaults } from '../../src/build/int8-build.js';
import { loadNative } from '../../src/runner/binding.js';
import { buildInt8Into, buildOptions, loadError, nativeOptions, storiesDir, tempDir } from './engine-helpers.js';
import { tensorOffsets } from './safetensors-reader.js';

const native = loadNative();
let good: string;

beforeAll(async () => {
  good = (await buildInt8Into(storiesDir)).dir;
});

function damaged(damage: (dir: string) => void): string {
  const dir = join(tempDir(), 'engine');
  cpSync(good, dir, { recursive: true });
  damage(dir);
  return dir;
}

/** Rewrites `len` bytes of the weights file at `at`. */
function overwrite(dir: string, at: number, bytes: Buffer): void {
  const path = join(dir, 'model.safetensors');
  const buf = readFileSync(path);
  bytes.copy(buf, at);
  writeFileSync(path, buf);
}

describe('damaged int8 engines', () => {
  test('a changed byte of an int8 matrix: its row no longer sums to weight_sum', async () => {
    const t = tensorOffsets(join(good, 'model.safetensors')).get('model.layers.2.mlp.up_proj.weight')!;
    const dir = damaged((d) => {
      const buf = readFileSync(join(d, 'model.safetensors'));
      overwrite(d, t.start + 5, Buffer.from([(buf[t.start + 5]! + 1) & 0x7f]));
    });
    expect(await loadError(dir)).toMatch(
      new RegExp(
        `^engine ${dir} is damaged: tensor model\\.layers\\.2\\.mlp\\.up_proj\\.weight row 1 sums to -?\\d+, but model\\.layers\\.2\\.mlp\\.up_proj\\.weight_sum says -?\\d+ \\(its bytes were changed\\) \\(rebuild it with kvserve build\\)$`,
      ),
    );
  });

  test('a garbled header', async () => {
    const dir = damaged((d) => overwrite(d, 8, Buffer.from('{"x":')));
    expect(await loadError(dir)).toMatch(/is damaged: .*malformed safetensors header/);
  });

  test('a truncated weights file', async () => {
    const dir = damaged((d) => {
      const p = join(d, 'model.safetensors');
      truncateSync(p, Math.floor(statSync(p).size / 2));
    });
    expect(await loadError(dir)).toMatch(/is damaged: .*lie outside the file's \d+ data bytes/);
  });

  test('a missing weight_scale', async () => {
    const dir = damaged((d) => {
      const p = join(d, 'model.safetensors');
      const buf = readFileSync(p);
      const n = Number(buf.readBigUInt64LE(0));
      const header = buf
        .subarray(8, 8 + n)
        .toString('utf8')
        .replace('"lm_head.weight_scale"', '"lm_head.weight_scalf"');
      Buffer.from(header).copy(buf, 8);
      writeFileSync(p, buf);
    });
    expect(await loadError(dir)).toMatch(/is damaged: int8 tensor lm_head\.weight needs lm_head\.weight_scale/);
  });

  test('a manifest from a newer format version', async () => {
    const { formatVersion } = native.engineTarget();
    const dir = damaged((d) => {
      const m = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8'));
      m.formatVersion = formatVersion + 1;
      writeFileSync(join(d, 'manifest.json'), JSON.stringify(m));
    });
    expect(await loadError(dir)).toContain(
      `has format version ${formatVersion + 1} (newer); this kvserve reads format version ${formatVersion}: rebuild with kvserve build --model ${storiesDir}`,
    );
    expect(await loadError(dir)).toContain('--quantization int8 --calib-data ');
  });

  test('int8 tensors under a manifest that says none', async () => {
    const dir = damaged((d) => {
      const m = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8'));
      m.quantization = { method: 'none' };
      writeFileSync(join(d, 'manifest.json'), JSON.stringify(m));
    });
    expect(await loadError(dir)).toMatch(/is damaged: tensor .* is int8, the manifest says float32/);
  });

  test('a quantization this kvserve cannot run', async () => {
    const dir = damaged((d) => {
      const m = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8'));
      m.quantization.method = 'int4';
      writeFileSync(join(d, 'manifest.json'), JSON.stringify(m));
    });
    expect(await loadError(dir)).toContain(
      `engine ${dir} is quantized as int4 for device cpu, which this kvserve cannot run`,
    );
  });
});

test('an int8 engine passed as a model folder is refused, at load and at build', async () => {
  const line = `tensor lm_head.weight in ${good} is int8: a model folder holds float weights (a quantized engine made by kvserve build is loaded with --engine ${good})`;
  await expect(native.loadEngine(nativeOptions({ model: good }))).rejects.toThrow(line);
  await expect(buildEngineFolder(buildOptions(good, join(tempDir(), 'engine')))).rejects.toThrow(line);
});

describe('int8 builds refused before anything is written', () => {
  const refuse = async (over: Record<string, unknown>, message: string | RegExp) => {
    const out = join(tempDir(), 'engine');
    const o = { ...buildOptions(storiesDir, out), quantization: 'int8' as const, ...over };
    await expect(buildEngineFolder(o)).rejects.toThrow(message);
    expect(existsSync(out)).toBe(false);
  };
  const calib = (text: string) => {
    const f = join(tempDir(), 'calib.txt');
    writeFileSync(f, text);
    return { int8: { ...int8Defaults(), calibData: f } };
  };

  test('empty calibration data', () => refuse(calib(''), /^--calib-data .* holds no text$/));
  test('too little calibration data', () =>
    refuse(calib('The cat sat.\n\nThe dog ran.'), /is too short: \d+ tokens in 2 samples/));
  test.runIf(!native.builtWithCuda())('int8 for cuda where this build has no CUDA backend', () =>
    refuse({ device: 'cuda' }, /^--device cuda: this build has no CUDA backend/),
  );
  test('fp8 for cpu', () =>
    refuse({ quantization: 'fp8' }, '--quantization fp8 is for --device cuda (on cpu: none or int8)'));
  test('an unknown --keep-precision name', () =>
    refuse(
      { int8: { ...int8Defaults(), keepPrecision: 'lm_head,mlp.down' } },
      '--keep-precision: no linear layer of this model is named "mlp.down"',
    ));
  test('an α outside [0, 1]', () =>
    refuse(
      { int8: { ...int8Defaults(), alpha: '1.5' } },
      '--smoothquant-alpha must be auto or a number in [0, 1], got "1.5"',
    ));
});
