// --engine-cache DIR beside --model: the engine for (model content, target, build options) is built on the
// first start and reused by every later one. The key covers everything that makes two engines differ; a
// changed model file, dtype, profile, CPU feature set, GPU (model, driver major, cuBLASLt version) or kvserve
// format gives a new key and a new build.
// The model is hashed at every start, reading again only the files that changed since (model-hash.ts).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ProgressFn } from '../load-progress.js';
import { loadNative, type NativeModule, type NativeTarget } from '../runner/binding.js';
import { buildEngineFolder, kvserveVersion, type BuildOptions } from './build-engine.js';
import { MANIFEST } from './manifest.js';
import { hashModelFolder, type HashMemo, type ModelHash } from './model-hash.js';

export type CacheRequest = Omit<BuildOptions, 'out'> & { cacheDir: string };

export function engineCacheKey(o: Omit<CacheRequest, 'cacheDir'>, hash: ModelHash, native: NativeModule): string {
  const t = native.engineTarget(o.device);
  const key = {
    formatVersion: t.formatVersion,
    kvserve: kvserveVersion(),
    content: hash.contentHash,
    device: o.device,
    arch: t.arch,
    features: t.features,
    ...(o.device === 'cuda' ? { gpu: cudaTargetKey(t) } : {}),
    dtype: o.dtype,
    quantization: o.quantization,
    profile: o.profile,
  };
  return createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 20);
}

/** What a CUDA engine is refused for at load (engines/cuda/cuda_target_match.cc), so a cached engine is
 *  found again exactly when it would load: the GPU model, the driver's major version, cuBLASLt's major.minor. */
function cudaTargetKey(t: NativeTarget): Record<string, string> {
  const major = (v = '') => v.split('.')[0]!;
  const majorMinor = (v = '') => v.split('.').slice(0, 2).join('.');
  return {
    gpuName: t.gpuName ?? '',
    computeCapability: t.computeCapability ?? '',
    driver: t.driverVersion ? major(t.driverVersion) : `cuda ${major(t.cudaDriverVersion)}`,
    cublasLt: majorMinor(t.cublasLtVersion),
  };
}

/** The cached engine's folder, built now when it is not there yet. `log` says which of the two happened. */
export async function ensureCachedEngine(
  r: CacheRequest,
  progress: ProgressFn | undefined,
  log: (line: string) => void,
  native: NativeModule = loadNative(),
): Promise<string> {
  const memoPath = join(
    r.cacheDir,
    '.hashes',
    `${createHash('sha256').update(r.modelDir).digest('hex').slice(0, 20)}.json`,
  );
  const memo = readMemo(memoPath);
  const hash = await hashModelFolder(r.modelDir, (f) => progress?.('hash', f), memo);
  writeMemo(memoPath, memo);
  const name = `${basename(r.modelDir).replace(/[^\w.-]/g, '_')}-${engineCacheKey(r, hash, native)}`;
  const dir = join(r.cacheDir, name);
  if (existsSync(join(dir, MANIFEST))) {
    log(`kvserve: engine cache: using ${dir}`);
    return dir;
  }
  log(`kvserve: engine cache: building ${dir}`);
  const { cacheDir: _, ...build } = r;
  await buildEngineFolder({ ...build, out: dir }, progress, native, hash);
  return dir;
}

function readMemo(path: string): HashMemo {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as HashMemo;
  } catch {
    return {}; // none yet, or unreadable: everything is hashed again
  }
}

function writeMemo(path: string, memo: HashMemo): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(memo));
  renameSync(tmp, path);
}
