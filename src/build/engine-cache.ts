// --engine-cache DIR beside --model: the engine for (model content, target, build options) is built on the
// first start and reused by every later one. The key covers everything that makes two engines differ; a
// changed model file, dtype, profile, CPU feature set or kvserve format gives a new key and a new build.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ProgressFn } from '../load-progress.js';
import { loadNative, type NativeModule } from '../runner/binding.js';
import { buildEngineFolder, kvserveVersion, type BuildOptions } from './build-engine.js';
import { MANIFEST } from './manifest.js';
import { hashModelFolder, type ModelHash } from './model-hash.js';

export type CacheRequest = Omit<BuildOptions, 'out'> & { cacheDir: string };

export function engineCacheKey(o: Omit<CacheRequest, 'cacheDir'>, hash: ModelHash, native: NativeModule): string {
  const t = native.engineTarget();
  const key = {
    formatVersion: t.formatVersion, kvserve: kvserveVersion(), content: hash.contentHash, device: o.device,
    arch: t.arch, features: t.features, dtype: o.dtype, quantization: o.quantization, profile: o.profile,
  };
  return createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 20);
}

/** The cached engine's folder, built now when it is not there yet. `log` says which of the two happened. */
export async function ensureCachedEngine(r: CacheRequest, progress: ProgressFn | undefined, log: (line: string) => void,
  native: NativeModule = loadNative()): Promise<string> {
  const hash = await hashModelFolder(r.modelDir, (f) => progress?.('hash', f));
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
