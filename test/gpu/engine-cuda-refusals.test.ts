// A CUDA engine that this GPU, driver or cuBLASLt cannot run as it was built is refused at load, before a
// weight is read, in one line naming both sides and the kvserve build command that rebuilds it: another
// compute capability, another GPU model, another driver major version, another cuBLASLt major.minor (its
// tuned algorithms are only valid for it), another format version; and an engine for the other device. The
// engine cache keys CUDA engines by that target. (The manifests are edited copies of a real engine: this
// machine has one GPU.)
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { buildEngineFolder } from '../../src/build/build-engine.js';
import { applyEngineFlags } from '../../src/build/engine-flags.js';
import { readManifest } from '../../src/build/manifest.js';
import { engineDefaults } from '../../src/config.js';
import { loadNative, type NativeTarget } from '../../src/runner/binding.js';
import { kvserve } from '../cli/helpers/run-kvserve.js';
import { storiesDir } from '../native/harness.js';
import { buildCuda, loadError, PROFILE, tempDir, timedLoad } from './cuda-engine-helpers.js';

let good: string;
let here: NativeTarget;
beforeAll(async () => {
  good = await buildCuda(storiesDir);
  here = loadNative().engineTarget('cuda');
});

/** A copy of the good engine whose manifest target is edited. */
function withTarget(edit: (t: NativeTarget) => void): string {
  const dir = join(tempDir(), 'engine');
  cpSync(good, dir, { recursive: true });
  const path = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(path, 'utf8'));
  edit(m.target);
  writeFileSync(path, JSON.stringify(m));
  return dir;
}

const rebuild = `: rebuild with kvserve build --model ${storiesDir} --device cuda --dtype auto`;

describe('engines for another GPU, driver or cuBLASLt', () => {
  test('the engine describes this GPU, and loads here', async () => {
    expect(readManifest(good).target).toEqual({ ...here, formatVersion: undefined });
    (await timedLoad({ engine: good })).engine.dispose();
  });

  test('another compute capability', async () => {
    const dir = withTarget((t) => {
      t.arch = 'sm_80';
      t.computeCapability = '8.0';
    });
    const msg = await loadError({ engine: dir });
    expect(msg).toContain(
      `engine ${dir} was built for sm_80 (${here.gpuName}, compute capability 8.0); this GPU is ${here.arch} ` +
        `(${here.gpuName}, compute capability ${here.computeCapability})${rebuild}`,
    );
    expect(msg).toMatch(new RegExp(`--out ${dir}$`));
  });

  test('another GPU model of the same architecture', async () => {
    const other = here.gpuName === 'NVIDIA H100 80GB HBM3' ? 'NVIDIA H200' : 'NVIDIA H100 80GB HBM3';
    const dir = withTarget((t) => {
      t.gpuName = other;
    });
    expect(await loadError({ engine: dir })).toContain(
      `engine ${dir} was built for the ${other} (its GEMM algorithms were timed on that GPU model); this GPU is the ` +
        `${here.gpuName}${rebuild}`,
    );
  });

  test('another driver major version; another minor loads', async () => {
    const bump = (v: string) => `${Number(v.split('.')[0]) + 1}.${v.split('.').slice(1).join('.')}`;
    const known = Boolean(here.driverVersion);
    const dir = withTarget((t) => {
      if (known) t.driverVersion = bump(here.driverVersion!);
      else t.cudaDriverVersion = bump(here.cudaDriverVersion!);
    });
    const msg = await loadError({ engine: dir });
    expect(msg).toContain(`engine ${dir} was built with `);
    expect(msg).toContain(
      known ? `NVIDIA driver ${bump(here.driverVersion!)}` : `CUDA ${bump(here.cudaDriverVersion!)}`,
    );
    expect(msg).toContain(`(another major version)${rebuild}`);
    if (!known) return;
    const minor = withTarget((t) => {
      t.driverVersion = `${here.driverVersion!.split('.')[0]}.0.1`;
    });
    (await timedLoad({ engine: minor })).engine.dispose();
  });

  test("another cuBLASLt minor is refused (its algorithms are that version's); another patch level loads", async () => {
    const [major, minor] = here.cublasLtVersion!.split('.');
    const other = `${major}.${Number(minor) + 1}.0`;
    const dir = withTarget((t) => {
      t.cublasLtVersion = other;
    });
    expect(await loadError({ engine: dir })).toContain(
      `engine ${dir} was built with cuBLASLt ${other} (its tuned GEMM algorithms are valid for cuBLASLt ` +
        `${major}.${Number(minor) + 1} only); this build has cuBLASLt ${here.cublasLtVersion}${rebuild}`,
    );
    const patch = withTarget((t) => {
      t.cublasLtVersion = `${major}.${minor}.99`;
    });
    (await timedLoad({ engine: patch })).engine.dispose();
  });

  test('another format version', async () => {
    const dir = join(tempDir(), 'engine');
    cpSync(good, dir, { recursive: true });
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    m.formatVersion += 1;
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    expect(await loadError({ engine: dir })).toContain(`engine ${dir} has format version ${m.formatVersion} (newer)`);
  });

  test('kvserve generate --engine of a refused engine: one line, exit 1', async () => {
    const dir = withTarget((t) => {
      t.gpuName = 'NVIDIA A100-SXM4-80GB';
    });
    const r = await kvserve(['generate', '--engine', dir, '--prompt', 'Once upon a time', '--quiet']);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('npm warn'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^kvserve: engine ${dir} was built for the NVIDIA A100-SXM4-80GB .*--out ${dir}$`),
    );
  });
});

describe('engines for the other device', () => {
  test('a CPU engine given to --device cuda, a CUDA engine given to --device cpu', async () => {
    const cpu = join(tempDir(), 'engine');
    await buildEngineFolder({
      model: storiesDir,
      modelDir: storiesDir,
      revision: null,
      out: cpu,
      device: 'cpu',
      dtype: 'auto',
      quantization: 'none',
      threads: 2,
      profile: PROFILE,
    });
    expect(await loadError({ engine: cpu, device: 'cuda' })).toContain(
      `engine ${cpu} was built for device cpu; this load asked for device cuda: serve it with --device cpu, or rebuild with kvserve build`,
    );
    expect(await loadError({ engine: good, device: 'cpu' })).toContain(
      `engine ${good} was built for device cuda; this load asked for device cpu: serve it with --device cuda, or rebuild with kvserve build`,
    );
  });
});

test('--engine-cache builds a CUDA engine once, reuses it, and keeps it apart from the CPU one', async () => {
  const cache = join(tempDir(), 'cache');
  const start = async (device: 'cpu' | 'cuda') => {
    const log: string[] = [];
    const c = await applyEngineFlags(
      { ...engineDefaults(), model: storiesDir, device, threads: 2, engineCache: cache },
      { log: (l) => log.push(l) },
    );
    return { engine: c.engine, log };
  };
  const first = await start('cuda');
  expect(first.log).toEqual([`kvserve: engine cache: building ${first.engine}`]);
  expect(readManifest(first.engine).target.device).toBe('cuda');
  const second = await start('cuda');
  expect(second.log).toEqual([`kvserve: engine cache: using ${first.engine}`]);
  const cpu = await start('cpu');
  expect(cpu.engine).not.toBe(first.engine);
  expect(readManifest(cpu.engine).target.device).toBe('cpu');
  expect(readdirSync(cache).filter((n) => !n.startsWith('.'))).toHaveLength(2);
});
