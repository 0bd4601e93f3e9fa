// The host half of --quantization int8 on the CUDA backend (engines/cuda/cuda_int8.cc), which needs no GPU,
// compiled on its own with the CPU int8 build's calibration and search (cuda_int8_cases.cc) and run on
// stories260K with the shipped calibration text:
// - the store holds exactly the CUDA int8 layout (checkCudaEngineTensors passes with the formats read back
//   from its dtypes): q/k/v and gate/up fused and int8, o_proj int8 with its act_smooth, down_proj (K = 172)
//   and lm_head in bf16 with the reason in the report;
// - every int8 matrix computes, by kvserve_kernels.h's definition of the int8 layer, the same bf16 bits as
//   the CPU int8 matrices it was made from (so unpacking, fusing, scales and multipliers are right), every
//   float matrix holds the CPU's rows, every norm is the CPU's (smoothed) float32 norm rounded to bf16;
// - with a bound so tight that some members of a group fail it, the fused groups stay float together, the
//   members within the bound saying which one kept them.
// The kernels themselves run on the GPU: test/gpu/native/int8_*_test.cu, test/gpu/engine-int8.test.ts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { int8Defaults, planInt8 } from '../../src/build/int8-build.js';
import { storiesDir } from './harness.js';

const repo = resolve(__dirname, '..', '..');
const exe = join(mkdtempSync(join(tmpdir(), 'kvserve-cuda-int8-')), 'cuda_int8_cases');
let calibration = '';

beforeAll(async () => {
  const sources = [
    'test/native/cuda_int8_cases.cc',
    ...['cuda/cuda_int8.cc', 'cuda/cuda_engine_layout.cc', 'safetensors.cc', 'mapped_files.cc', 'llama_weights.cc']
      .concat(['model_config.cc', 'json.cc', 'rope.cc', 'int8_tensors.cc', 'sampler.cc'])
      .concat(
        ['int8_model', 'smoothquant', 'calibration', 'quant_error', 'int8_linear', 'linear', 'cpu_weights'].map(
          (f) => `cpu/${f}.cc`,
        ),
      )
      .concat(['cpu/cpu_backend.cc', 'cpu/paged_attention.cc', 'cpu/thread_pool.cc'])
      .map((s) => `engines/${s}`),
  ];
  // The addon's flags (CMakeLists.txt): the CPU int8 kernels as the build runs them.
  execFileSync(process.env.CXX || 'c++', [
    '-std=c++17',
    '-O2',
    '-ffp-contract=off',
    ...(process.arch === 'x64' ? ['-march=native'] : []),
    `-I${repo}`,
    '-o',
    exe,
    ...sources.map((s) => resolve(repo, s)),
  ]);
  const plan = await planInt8(int8Defaults(), {
    dir: storiesDir,
    configPath: join(storiesDir, 'config.json'),
    dummy: false,
    maxModelLen: 0,
  });
  const { tokens, offsets } = plan.request.calibration!;
  const lines: string[] = [];
  for (let i = 0; i + 1 < offsets.length; i++) lines.push(tokens.subarray(offsets[i]!, offsets[i + 1]!).join(' '));
  calibration = lines.join('\n');
}, 300_000);

interface Run {
  tensors: Map<string, { shape: number[]; dtype: string }>;
  check: string;
  formats: string;
  layers: Map<string, { as: string; why: string }>;
  mismatches: Map<string, number>;
}

function run(...args: string[]): Run {
  const out = execFileSync(exe, [storiesDir, ...args], { input: calibration, encoding: 'utf8' })
    .trimEnd()
    .split('\n');
  const r: Run = { tensors: new Map(), check: '', formats: '', layers: new Map(), mismatches: new Map() };
  for (const line of out) {
    const [kind, rest] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)];
    const tensor = /^(\S+) \[(.*)\] (\S+)$/.exec(rest);
    const layer = /^(\S+) (int8|float) ?(.*)$/.exec(rest);
    const counted = /^(\S+) .*mismatches (\d+)$/.exec(rest);
    if (kind === 'tensor' && tensor)
      r.tensors.set(tensor[1]!, { shape: tensor[2]!.split(', ').map(Number), dtype: tensor[3]! });
    else if (kind === 'check:') r.check = rest;
    else if (kind === 'formats:') r.formats = rest;
    else if (kind === 'layer' && layer) r.layers.set(layer[1]!, { as: layer[2]!, why: layer[3]! });
    else if ((kind === 'matrix' || kind === 'vector') && counted) r.mismatches.set(counted[1]!, Number(counted[2]));
    else throw new Error(`unexpected line: ${line}`);
  }
  return r;
}

describe('stories260K quantized for the CUDA int8 layout', () => {
  let r: Run;
  beforeAll(() => {
    r = run();
  });

  test('the store is the layout, as an engine load reads it back', () => {
    expect(r.check).toBe('');
    expect(r.formats).toBe('same');
    const t = (n: string) => r.tensors.get(`model.layers.2.${n}`);
    expect(t('self_attn.qkv_proj.weight')).toEqual({ shape: [128, 64], dtype: 'int8' });
    expect(t('self_attn.qkv_proj.weight_scale')).toEqual({ shape: [128], dtype: 'float32' });
    expect(t('self_attn.o_proj.weight')).toEqual({ shape: [64, 64], dtype: 'int8' });
    expect(t('self_attn.o_proj.act_smooth')).toEqual({ shape: [64], dtype: 'float32' });
    expect(t('mlp.gate_up_proj.weight')).toEqual({ shape: [344, 64], dtype: 'int8' });
    expect(t('mlp.down_proj.weight')).toEqual({ shape: [64, 172], dtype: 'bfloat16' });
    expect(t('mlp.down_proj.weight_scale')).toBeUndefined();
    expect(r.tensors.get('model.embed_tokens.weight')?.dtype).toBe('bfloat16');
    expect(r.tensors.has('lm_head.weight')).toBe(false); // tied
  });

  test('the report: what stays in bf16, and why', () => {
    expect(r.layers.get('lm_head')).toEqual({
      as: 'float',
      why: 'the CUDA int8 layout keeps lm_head in the compute dtype (as its fp8 layout does)',
    });
    expect(r.layers.get('model.layers.0.mlp.down_proj')).toEqual({
      as: 'float',
      why: 'its rows are 172 elements, not a multiple of 16 (the int8 GEMV reads 16-byte rows)',
    });
    for (const n of ['self_attn.q_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj'])
      expect(r.layers.get(`model.layers.4.${n}`)?.as, n).toBe('int8');
  });

  test('every matrix computes the bits of the CPU int8 model it came from; every norm is its bf16', () => {
    expect(r.mismatches.size).toBe(1 + 5 * 6);
    expect([...r.mismatches].filter(([, n]) => n !== 0)).toEqual([]);
  });
});

test('a fused group with a member over the bound stays in float together', () => {
  const r = run('0.004');
  expect(r.check).toBe('');
  let fused = 0;
  for (let l = 0; l < 5; l++) {
    for (const group of [
      ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'],
      ['mlp.gate_proj', 'mlp.up_proj'],
    ]) {
      const members = group.map((n) => r.layers.get(`model.layers.${l}.${n}`)!);
      expect(new Set(members.map((m) => m.as)).size, `layer ${l} ${group}`).toBe(1);
      const over = members.filter((m) => /^output error .* > bound 0\.004$/.test(m.why));
      const kept = members.filter((m) => m.why.startsWith('fused with '));
      if (members[0]!.as === 'float') {
        expect(over.length, `layer ${l} ${group}`).toBeGreaterThan(0);
        expect(over.length + kept.length).toBe(group.length);
        fused += kept.length;
      }
    }
  }
  expect(fused).toBeGreaterThan(0); // the bound is tight enough to show it
  expect([...r.mismatches].filter(([, n]) => n !== 0)).toEqual([]);
});
