// An engine folder that this build or this machine cannot run, or that is damaged, is refused at load in one
// line naming what is wrong (both sides where there are two) and how to rebuild it; never a crash.
import { cpSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadNative } from '../../src/runner/binding.js';
import { buildInto, loadError, nativeOptions, storiesDir, tempDir } from './engine-helpers.js';

const native = loadNative();
let good: string;

beforeAll(async () => {
  good = await buildInto(storiesDir);
});

/** A copy of the good engine with `damage` applied. */
function damaged(damage: (dir: string) => void): string {
  const dir = join(tempDir(), 'engine');
  cpSync(good, dir, { recursive: true });
  damage(dir);
  return dir;
}

// biome-ignore lint/suspicious/noExplicitAny: a test edits arbitrary manifest fields to break them
function editManifest(dir: string, edit: (m: Record<string, any>) => void): void {
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(path, 'utf8'));
  edit(m);
  writeFileSync(path, JSON.stringify(m));
}

describe('engines this build or this CPU cannot run', () => {
  test('an ISA feature the engine was built to use is missing on this CPU', async () => {
    const { hostFeatures } = native.engineTarget();
    // Features kvserve knows on x86-64; one this CPU lacks stands in for an engine built on a newer CPU.
    const missing = ['avx512fp16', 'amx-tile', 'avx512bf16', 'avx512vnni', 'avx512f', 'avx2'].find(
      (f) => !hostFeatures.includes(f),
    );
    if (!missing) return; // this CPU has every feature kvserve knows: no engine can be built for more
    const dir = damaged((d) =>
      editManifest(d, (m) => {
        m.target.features = [...m.target.features, missing];
      }),
    );
    const msg = await loadError(dir);
    expect(msg).toContain(`engine ${dir} was built for`);
    expect(msg).toContain(`${missing} missing here`);
    expect(msg).toContain(`this CPU has ${hostFeatures.join(',')}`);
    expect(msg).toContain(`rebuild with kvserve build --model ${storiesDir}`);
    expect(msg).toContain(`--out ${dir}`);
  });

  test('another architecture', async () => {
    const arch = native.engineTarget().arch === 'aarch64' ? 'x86_64' : 'aarch64';
    const dir = damaged((d) =>
      editManifest(d, (m) => {
        m.target.arch = arch;
      }),
    );
    expect(await loadError(dir)).toMatch(
      new RegExp(`built for ${arch}; this machine is \\w+: rebuild with kvserve build`),
    );
  });

  test('a newer and an older format version', async () => {
    const { formatVersion } = native.engineTarget();
    const newer = damaged((d) =>
      editManifest(d, (m) => {
        m.formatVersion = formatVersion + 1;
      }),
    );
    expect(await loadError(newer)).toContain(
      `has format version ${formatVersion + 1} (newer); this kvserve reads format version ${formatVersion}: rebuild with kvserve build`,
    );
    const older = damaged((d) =>
      editManifest(d, (m) => {
        m.formatVersion = formatVersion - 1;
      }),
    );
    expect(await loadError(older)).toContain(`has format version ${formatVersion - 1}; this kvserve reads`);
  });

  test('a CPU engine asked for on cuda', async () => {
    const e = await native.loadEngine(nativeOptions({ engine: good, device: 'cuda' })).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(e?.message).not.toContain('\n');
    // Without CUDA in the build the device is refused first, before the engine is looked at.
    if (!native.builtWithCuda()) expect(e?.message).toContain('this build has no CUDA backend');
    else if (native.cudaAvailable())
      expect(e?.message).toContain('was built for device cpu; this load asked for device cuda');
    else expect(e).toBeInstanceOf(Error);
  });
});

describe('damaged engine folders', () => {
  test('manifest.json that is not JSON', async () => {
    const dir = damaged((d) => writeFileSync(join(d, 'manifest.json'), '{"formatVersion": 1,'));
    expect(await loadError(dir)).toContain(`engine ${dir}: manifest.json is not valid JSON`);
  });

  test('no manifest.json', async () => {
    const dir = damaged((d) => rmSync(join(d, 'manifest.json')));
    expect(await loadError(dir)).toContain('has no manifest.json');
  });

  test('missing weights', async () => {
    const dir = damaged((d) => rmSync(join(d, 'model.safetensors')));
    expect(await loadError(dir)).toMatch(/is damaged: no safetensors weights in .*rebuild it with kvserve build/);
  });

  test('truncated weights', async () => {
    const dir = damaged((d) =>
      truncateSync(join(d, 'model.safetensors'), statSync(join(d, 'model.safetensors')).size - 1000),
    );
    expect(await loadError(dir)).toMatch(/is damaged: .*lie outside the file's/);
  });

  test("weights whose shapes are not the config's", async () => {
    const dir = damaged((d) => {
      const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
      c.intermediate_size += 8;
      writeFileSync(join(d, 'config.json'), JSON.stringify(c));
    });
    expect(await loadError(dir)).toMatch(
      /is damaged: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[\d+, \d+\], expected/,
    );
  });

  test('weights of another dtype than the manifest says', async () => {
    const dir = damaged((d) =>
      editManifest(d, (m) => {
        m.weights.dtype = 'bfloat16';
      }),
    );
    expect(await loadError(dir)).toMatch(/is damaged: tensor .* is float32, the manifest says bfloat16/);
  });

  test('a folder that does not exist', async () => {
    expect(await loadError(join(tempDir(), 'nothing'))).toContain('does not exist');
  });
});
