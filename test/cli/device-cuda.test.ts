// `--device cuda` on a build without the CUDA backend fails at once, in one line, before any weight is read:
// the model folder here has a good config and tokenizer but a model.safetensors of garbage, so an error
// about the weights would mean they were read first.
import { copyFileSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadNative } from '../../src/runner/binding.js';
import { kvserve } from './helpers/run-kvserve.js';

const repo = resolve(__dirname, '..', '..');
const demo = join(repo, 'models', 'stories260K');

function garbageWeightsModel(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'kvserve-cuda-')), 'garbage-weights');
  mkdirSync(dir);
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(demo, f), join(dir, f));
  writeFileSync(join(dir, 'model.safetensors'), Buffer.alloc(4096, 0xab));
  return dir;
}

describe.runIf(!loadNative().builtWithCuda())('--device cuda on a build without CUDA', () => {
  const model = garbageWeightsModel();

  test('the folder really is unreadable as weights (so the next test means what it says)', async () => {
    const r = await kvserve(['generate', '--model', model, '--prompt', 'hi', '--device', 'cpu', '--quiet']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/safetensors/);
  });

  test.each(['generate', 'serve'])(
    'kvserve %s: one line naming the missing CUDA backend, no weight read',
    async (command) => {
      const args = command === 'generate' ? ['--prompt', 'hi', '--quiet'] : ['--port', '0', '--log-level', 'silent'];
      const r = await kvserve([command, '--model', model, '--device', 'cuda', ...args]);
      expect(r.code).toBe(1);
      const lines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('npm warn'));
      expect(lines, r.stderr).toEqual([
        'kvserve: device cuda: this build has no CUDA backend (it was built without nvcc and cuBLASLt, or with ' +
          'KVSERVE_CUDA=OFF); rebuild where the CUDA toolkit is, or use --device cpu',
      ]);
    },
  );
});
