// The parts of a CUDA engine that need no GPU, compiled on their own (engines/cuda/cuda_engine_layout.cc and
// cuda_target_match.cc have no CUDA dependency):
// - the layout an engine's model.safetensors holds, against the tensors of the Hugging Face checkpoints of
//   test/fixtures (written by transformers): q/k/v and gate/up stacked row-wise into one matrix each, every
//   other tensor with its checkpoint shape, a tied lm_head not repeated, and nothing lost or added;
// - the check of an engine's tensors at load, one line naming the tensor;
// - which CUDA targets an engine runs on, and the one-line refusals otherwise.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, readSync, readdirSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { compileCases } from './harness.js';

const repo = resolve(__dirname, '..', '..');
const fixtures = join(repo, 'test', 'fixtures');
const exe = join(mkdtempSync(join(tmpdir(), 'kvserve-cuda-engine-')), 'cuda_engine_cases');

beforeAll(() => {
  const sources = [
    'cuda/cuda_target_match.cc',
    'cuda/cuda_engine_layout.cc',
    'safetensors.cc',
    'json.cc',
    'mapped_files.cc',
    'model_config.cc',
  ];
  compileCases(exe, ['test/native/cuda_engine_cases.cc', ...sources.map((s) => `engines/${s}`)]);
});

/** name → shape of every tensor in a checkpoint folder, from the safetensors headers themselves. */
function checkpointShapes(dir: string): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    const fd = openSync(join(dir, file), 'r');
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const header = Buffer.alloc(Number(len.readBigUInt64LE()));
    readSync(fd, header, 0, header.length, 8);
    closeSync(fd);
    for (const [name, e] of Object.entries(JSON.parse(header.toString('utf8')) as Record<string, { shape: number[] }>))
      if (name !== '__metadata__') shapes.set(name, e.shape);
  }
  return shapes;
}

interface Layout {
  tensors: Map<string, number[]>;
  dtypes: Map<string, string>;
  order: string[];
  check: string;
}

function layoutOf(mode: 'layout' | 'layout-fp8', config: string, ...change: string[]): Layout {
  const out = execFileSync(exe, [mode, config, ...change], { encoding: 'utf8' })
    .trimEnd()
    .split('\n');
  const check = out.pop()!;
  const tensors = new Map<string, number[]>();
  const dtypes = new Map<string, string>();
  for (const line of out) {
    const [, name, dims, dtype] = /^(\S+) \[(.*)\] (\S+)$/.exec(line)!;
    tensors.set(name!, dims!.split(', ').map(Number));
    dtypes.set(name!, dtype!);
  }
  return { tensors, dtypes, order: [...tensors.keys()], check: check.replace(/^check: ?/, '') };
}
const layout = (config: string, ...change: string[]) => layoutOf('layout', config, ...change);

describe('the CUDA layout of an engine, against the checkpoints', () => {
  test.each([
    'llama-llama3rope-headdim',
    'llama-linear-ropeparams-tied',
    'qwen2-bias',
    'qwen3-qknorm',
    'llama-bf16-sharded',
    'mistral',
  ])('%s', (name) => {
    const dir = join(fixtures, name);
    const hf = checkpointShapes(dir);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { tie_word_embeddings?: boolean };
    const { tensors, check } = layout(join(dir, 'config.json'));
    expect(check).toBe('');
    const stacked = (parts: string[]) => {
      const shapes = parts.map((p) => hf.get(p)!);
      return shapes[0]!.length === 1
        ? [shapes.reduce((a, s) => a + s[0]!, 0)]
        : [shapes.reduce((a, s) => a + s[0]!, 0), shapes[0]![1]!];
    };
    const expected = new Map<string, number[]>();
    for (const [n, shape] of hf) {
      const m = /^(model\.layers\.\d+\.)(self_attn\.[qkv]_proj|mlp\.(gate|up)_proj)\.(weight|bias)$/.exec(n);
      if (!m) {
        if (!(n === 'lm_head.weight' && config.tie_word_embeddings)) expected.set(n, shape);
        continue;
      }
      const [, layer, proj, , kind] = m;
      if (proj!.startsWith('self_attn'))
        expected.set(
          `${layer}self_attn.qkv_proj.${kind}`,
          stacked(['q', 'k', 'v'].map((x) => `${layer}self_attn.${x}_proj.${kind}`)),
        );
      else
        expected.set(
          `${layer}mlp.gate_up_proj.weight`,
          stacked([`${layer}mlp.gate_proj.weight`, `${layer}mlp.up_proj.weight`]),
        );
    }
    expect(new Map([...tensors].sort())).toEqual(new Map([...expected].sort()));
  });

  test('outside the layers first, then layer by layer (the device allocation order)', () => {
    const { order } = layout(join(fixtures, 'qwen2-bias', 'config.json'));
    expect(order.slice(0, 2)).toEqual(['model.embed_tokens.weight', 'model.norm.weight']); // tied: no lm_head
    expect(order.slice(2, 9)).toEqual([
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.self_attn.qkv_proj.weight',
      'model.layers.0.self_attn.qkv_proj.bias',
      'model.layers.0.self_attn.o_proj.weight',
      'model.layers.0.post_attention_layernorm.weight',
      'model.layers.0.mlp.gate_up_proj.weight',
      'model.layers.0.mlp.down_proj.weight',
    ]);
  });

  test.each([
    [
      'drop',
      'model.layers.1.self_attn.qkv_proj.weight',
      /^missing tensor model\.layers\.1\.self_attn\.qkv_proj\.weight \(expected shape \[\d+, \d+\]\)$/,
    ],
    [
      'shape',
      'model.layers.0.mlp.gate_up_proj.weight',
      /^tensor model\.layers\.0\.mlp\.gate_up_proj\.weight has shape \[257, 64\], expected \[256, 64\] from config\.json$/,
    ],
    [
      'dtype',
      'model.norm.weight',
      /^tensor model\.norm\.weight is float32, the manifest's bfloat16 layout has it in bfloat16$/,
    ],
    [
      'extra',
      'model.layers.0.self_attn.q_proj.weight',
      /^tensor model\.layers\.0\.self_attn\.q_proj\.weight is not part of the CUDA layout/,
    ],
  ])('an engine whose tensors are not the layout (%s %s) is named in one line', (change, name, message) => {
    expect(layout(join(fixtures, 'qwen2-bias', 'config.json'), change, name).check).toMatch(message);
  });
});

describe('the fp8 layout', () => {
  const config = join(fixtures, 'qwen2-bias', 'config.json');
  const matrices = /^model\.layers\.\d+\.(self_attn\.(qkv|o)_proj|mlp\.(gate_up|down)_proj)\.weight$/;

  test('the layer matrices in float8_e4m3fn, each followed by its float32 scale per row; the rest as in bf16', () => {
    const plain = layout(config);
    const fp8 = layoutOf('layout-fp8', config);
    expect(fp8.check).toBe('');
    const expected: string[] = [];
    for (const name of plain.order) {
      expected.push(name);
      if (matrices.test(name)) expected.push(name.replace(/weight$/, 'weight_scale'));
    }
    expect(fp8.order).toEqual(expected);
    for (const name of fp8.order) {
      if (matrices.test(name)) {
        expect(fp8.dtypes.get(name), name).toBe('float8_e4m3fn');
        expect(fp8.tensors.get(name), name).toEqual(plain.tensors.get(name));
      } else if (name.endsWith('.weight_scale')) {
        expect(fp8.dtypes.get(name), name).toBe('float32');
        expect(fp8.tensors.get(name), name).toEqual([plain.tensors.get(name.replace(/_scale$/, ''))![0]]);
      } else {
        expect(fp8.dtypes.get(name), name).toBe('bfloat16'); // norms, biases, embedding, lm_head
      }
    }
  });

  test('a matrix whose rows are not a multiple of 16 stays in bf16, without a scale (stories260K down_proj, K 172)', () => {
    const stories = layoutOf('layout-fp8', join(repo, 'models', 'stories260K', 'config.json'));
    expect(stories.check).toBe('');
    expect(stories.dtypes.get('model.layers.0.mlp.down_proj.weight')).toBe('bfloat16');
    expect(stories.tensors.has('model.layers.0.mlp.down_proj.weight_scale')).toBe(false);
    expect(stories.dtypes.get('model.layers.0.mlp.gate_up_proj.weight')).toBe('float8_e4m3fn');
    expect(stories.tensors.get('model.layers.0.mlp.gate_up_proj.weight_scale')).toEqual([344]);
  });

  test('a bf16 matrix where the fp8 layout has fp8, or a missing scale, is named in one line', () => {
    expect(layoutOf('layout-fp8', config, 'dtype', 'model.layers.0.mlp.down_proj.weight').check).toBe(
      "tensor model.layers.0.mlp.down_proj.weight is float32, the manifest's bfloat16 fp8 layout has it in float8_e4m3fn",
    );
    expect(layoutOf('layout-fp8', config, 'drop', 'model.layers.1.self_attn.o_proj.weight_scale').check).toMatch(
      /^missing tensor model\.layers\.1\.self_attn\.o_proj\.weight_scale \(expected shape \[\d+\]\)$/,
    );
  });
});

describe('which CUDA targets an engine runs on', () => {
  const h200 = {
    device: 'cuda',
    arch: 'sm_90',
    gpuName: 'NVIDIA H200',
    computeCapability: '9.0',
    driverVersion: '580.159.04',
    cudaDriverVersion: '13.0',
    cublasLtVersion: '13.1.0',
  };
  function verdict(built: object, here: object = h200): { why: string; driverKey: string } {
    const out = execFileSync(exe, ['target'], {
      input: `${JSON.stringify({ built: { ...h200, ...built }, here })}\n`,
      encoding: 'utf8',
    });
    const [why, driverKey] = JSON.parse(`[${out.trim().replace('" "', '","')}]`) as [string, string];
    return { why, driverKey };
  }

  test('the same GPU, driver major and cuBLASLt major.minor: runs (driver minor, cuBLASLt patch, SM count aside)', () => {
    expect(verdict({})).toEqual({ why: '', driverKey: '580' });
    expect(verdict({ driverVersion: '580.65.06', cublasLtVersion: '13.1.4' }).why).toBe('');
  });
  test('another compute capability', () => {
    expect(verdict({ arch: 'sm_80', computeCapability: '8.0', gpuName: 'NVIDIA A100-SXM4-80GB' }).why).toBe(
      'built for sm_80 (NVIDIA A100-SXM4-80GB, compute capability 8.0); this GPU is sm_90 (NVIDIA H200, compute capability 9.0)',
    );
  });
  test('another GPU model of the same architecture', () => {
    expect(verdict({ gpuName: 'NVIDIA H100 80GB HBM3' }).why).toBe(
      'built for the NVIDIA H100 80GB HBM3 (its GEMM algorithms were timed on that GPU model); this GPU is the NVIDIA H200',
    );
  });
  test('another driver major; without a readable driver version, the CUDA version it runs decides', () => {
    expect(verdict({ driverVersion: '570.124.06' }).why).toBe(
      'built with NVIDIA driver 570.124.06; this machine runs NVIDIA driver 580.159.04 (another major version)',
    );
    const unknown = { ...h200, driverVersion: '' };
    expect(verdict({ driverVersion: '', cudaDriverVersion: '12.8' }, unknown)).toEqual({
      why: 'built with an NVIDIA driver for CUDA 12.8; this machine runs an NVIDIA driver for CUDA 13.0 (another major version)',
      driverKey: 'cuda 12',
    });
    expect(verdict({ driverVersion: '', cudaDriverVersion: '13.1' }, unknown).why).toBe('');
  });
  test("another cuBLASLt major.minor: its tuned algorithms are that version's", () => {
    expect(verdict({ cublasLtVersion: '13.0.2' }).why).toBe(
      'built with cuBLASLt 13.0.2 (its tuned GEMM algorithms are valid for cuBLASLt 13.0 only); this build has cuBLASLt 13.1.0',
    );
    expect(verdict({ cublasLtVersion: '12.9.1' }).why).toMatch(/^built with cuBLASLt 12\.9\.1 /);
  });
  test('a manifest missing the GPU fields is refused, not accepted', () => {
    expect(verdict({ gpuName: '', computeCapability: '' }).why).toBe(
      'built for sm_90 (no GPU name recorded, no compute capability recorded); this GPU is sm_90 (NVIDIA H200, compute capability 9.0)',
    );
  });
});
