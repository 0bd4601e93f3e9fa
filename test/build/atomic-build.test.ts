// A build killed midway leaves nothing at its destination, only its temporary folder, which the next build
// of that destination removes.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect, test } from 'vitest';
import { staleTempFolders } from '../../src/build/atomic-folder.js';
import { buildEngineFolder } from '../../src/build/build-engine.js';
import { buildOptions, repo, storiesDir, tempDir } from './engine-helpers.js';

/** A bfloat16 Llama of zeros, big enough (about 75 MB) that its build takes a while: vocab 32000, hidden 512. */
function writeBigModel(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const h = 512,
    inter = 1024,
    vocab = 32000,
    layers = 2;
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: h,
      intermediate_size: inter,
      num_hidden_layers: layers,
      num_attention_heads: 8,
      num_key_value_heads: 8,
      vocab_size: vocab,
      max_position_embeddings: 128,
      rms_norm_eps: 1e-5,
      torch_dtype: 'bfloat16',
      tie_word_embeddings: false,
    }),
  );
  const tensors: Array<[string, number[]]> = [
    ['model.embed_tokens.weight', [vocab, h]],
    ['model.norm.weight', [h]],
    ['lm_head.weight', [vocab, h]],
  ];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    tensors.push(
      [`${p}input_layernorm.weight`, [h]],
      [`${p}post_attention_layernorm.weight`, [h]],
      [`${p}self_attn.q_proj.weight`, [h, h]],
      [`${p}self_attn.k_proj.weight`, [h, h]],
      [`${p}self_attn.v_proj.weight`, [h, h]],
      [`${p}self_attn.o_proj.weight`, [h, h]],
      [`${p}mlp.gate_proj.weight`, [inter, h]],
      [`${p}mlp.up_proj.weight`, [inter, h]],
      [`${p}mlp.down_proj.weight`, [h, inter]],
    );
  }
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([len, json, Buffer.alloc(offset)]));
}

test('a killed build leaves nothing at --out, and the next build removes its temporary folder', async () => {
  const work = tempDir();
  const model = join(work, 'big');
  writeBigModel(model);
  const out = join(work, 'engines', 'big-f32');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli.ts', 'build', '--model', model, '--out', out, '--dtype', 'float32', '--threads', '1'],
    { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.includes('building: prepare')) child.kill('SIGKILL'); // the weights are being prepared: midway
  });
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_, s) => resolve(s)));
  expect(signal, `the build ended before it was killed: ${stderr}`).toBe('SIGKILL');
  expect(existsSync(out)).toBe(false);
  const left = staleTempFolders(out);
  expect(left).toHaveLength(1); // the killed build's, half-written

  await buildEngineFolder(buildOptions(storiesDir, out));
  expect(existsSync(join(out, 'manifest.json'))).toBe(true);
  expect(readdirSync(dirname(out)).sort()).toEqual(['big-f32']);
});

test('a build over an existing engine replaces it whole; a folder that is no engine is not replaced', async () => {
  const work = tempDir();
  const out = join(work, 'engine');
  await buildEngineFolder(buildOptions(storiesDir, out));
  await buildEngineFolder(buildOptions(storiesDir, out, 'bfloat16'));
  expect(readdirSync(work)).toEqual(['engine']);
  const notEngine = join(work, 'data');
  mkdirSync(notEngine);
  writeFileSync(join(notEngine, 'keep.txt'), 'x');
  await expect(buildEngineFolder(buildOptions(storiesDir, notEngine))).rejects.toThrow(
    /exists and is not an engine folder/,
  );
  expect(readdirSync(notEngine)).toEqual(['keep.txt']);
});
