// Hub download benchmark (a script, not a test): a model with one large random model.safetensors served by
// the fake Hub on 127.0.0.1 (test/hub/fake-hub.ts), fetched into a fresh cache. Loopback has no network
// limit, so the cold row is kvserve's own cost per byte (fetch, write to .incomplete, sha256 check, rename);
// the cached rows are what every later start pays: two API requests online, none offline.
//
//   npx tsx test/perf/hub-download.ts [--mib 256]
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resolveModelDir } from '../../src/hub/resolve-model.js';
import { startFakeHub } from '../hub/fake-hub.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { mib: { type: 'string', default: '256' } } });
  const mib = Number(values.mib);
  const repoDir = mkdtempSync(join(tmpdir(), 'kvserve-bigrepo-'));
  const demo = join(import.meta.dirname, '..', '..', 'models', 'stories260K');
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(demo, f), join(repoDir, f));
  const chunk = randomBytes(1 << 20);
  const weights = Buffer.concat(
    Array.from({ length: mib }, (_, i) => {
      chunk[0] = i & 0xff;
      return Buffer.from(chunk);
    }),
  );
  writeFileSync(join(repoDir, 'model.safetensors'), weights);
  const hub = await startFakeHub({ 'kvserve-test/big': { dir: repoDir, refs: { main: 'ab'.repeat(20) } } });
  const cacheDir = mkdtempSync(join(tmpdir(), 'kvserve-hf-'));
  const settings = { endpoint: hub.url, token: undefined, offline: false, cacheDir, noProgress: true };
  const time = async (s: typeof settings) => {
    const t = performance.now();
    await resolveModelDir('kvserve-test/big', { settings: s });
    return performance.now() - t;
  };
  const cold = await time(settings);
  const online = await time(settings);
  const offline = await time({ ...settings, offline: true });
  console.log(`| case | time | rate |\n|---|---|---|`);
  console.log(
    `| ${mib} MiB model.safetensors, empty cache | ${(cold / 1000).toFixed(2)} s | ${(mib / (cold / 1000)).toFixed(0)} MiB/s |`,
  );
  console.log(`| cached, online (model info + tree) | ${online.toFixed(1)} ms | |`);
  console.log(`| cached, HF_HUB_OFFLINE=1 | ${offline.toFixed(2)} ms | |`);
  await hub.close();
  rmSync(repoDir, { recursive: true });
  rmSync(cacheDir, { recursive: true });
}

void main();
