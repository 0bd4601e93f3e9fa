// Every way loading or stepping can fail rejects with a clear message, and the process carries on.
import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, type NativeEngine, type StepBatch } from '../../src/runner/binding.js';
import { blockSize, buildBatch, engineOptions, loadExpected, storiesDir } from './harness.js';

const native = loadNative();
const work = mkdtempSync(join(tmpdir(), 'kvserve-native-errors-'));
const storiesConfig = JSON.parse(
  JSON.stringify(await import(join(storiesDir, 'config.json'), { with: { type: 'json' } })),
).default;

/** A model folder holding the stories260K weights and a config.json edited by `edit`. */
function folderWith(name: string, config: string | Record<string, unknown>, weights = true): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  if (weights) copyFileSync(join(storiesDir, 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

const load = (model: string, extra = {}) => native.loadEngine(engineOptions({ model, ...extra }));

describe('load errors', () => {
  it('missing folder', async () => {
    await expect(load(join(work, 'nope'))).rejects.toThrow(/model folder .*nope does not exist/);
  });
  it('folder without config.json', async () => {
    const dir = join(work, 'empty');
    mkdirSync(dir, { recursive: true });
    await expect(load(dir)).rejects.toThrow(/no config.json in model folder/);
  });
  it('malformed config.json', async () => {
    await expect(load(folderWith('malformed', '{"hidden_size": 64,'))).rejects.toThrow(/config.json: .*malformed JSON/);
  });
  it('unsupported architecture', async () => {
    const dir = folderWith('gpt2', { ...storiesConfig, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' });
    await expect(load(dir)).rejects.toThrow(/unsupported architecture "GPT2LMHeadModel"/);
  });
  it('unsupported dtype', async () => {
    const dir = folderWith('int8', { ...storiesConfig, torch_dtype: 'int8' });
    await expect(load(dir)).rejects.toThrow(/unsupported dtype "int8"/);
  });
  it('unsupported rope type', async () => {
    const dir = folderWith('yarn', { ...storiesConfig, rope_scaling: { rope_type: 'yarn', factor: 4 } });
    await expect(load(dir)).rejects.toThrow(/unsupported rope type "yarn"/);
  });
  it('sliding window in use', async () => {
    const dir = folderWith('swa', {
      ...storiesConfig,
      architectures: ['MistralForCausalLM'],
      model_type: 'mistral',
      sliding_window: 128,
    });
    await expect(load(dir)).rejects.toThrow(/sliding-window attention .* not supported/);
  });
  it('llama attention_bias (an o_proj bias) is refused, not dropped', async () => {
    const dir = folderWith('llama-bias', { ...storiesConfig, attention_bias: true });
    await expect(load(dir)).rejects.toThrow(/attention_bias true is not supported for llama/);
  });
  it('an integer field beyond 32 bits is refused, not wrapped (2^32 + 512 is not a vocabulary of 512)', async () => {
    const dir = folderWith('wide-vocab', { ...storiesConfig, vocab_size: 2 ** 32 + 512 });
    await expect(load(dir)).rejects.toThrow(/field "vocab_size": 4294967808 is out of range/);
  });
  it('a non-integer eos_token_id names the field', async () => {
    const dir = folderWith('eos-float', { ...storiesConfig, eos_token_id: [2, 2.5] });
    await expect(load(dir)).rejects.toThrow(/field "eos_token_id": expected a JSON integer, found 2\.5/);
  });
  it('an eos_token_id or bos_token_id outside the vocabulary names the field', async () => {
    await expect(load(folderWith('eos-600', { ...storiesConfig, eos_token_id: 600 }))).rejects.toThrow(
      /field "eos_token_id": 600 is outside the vocabulary \[0, 512\)/,
    );
    await expect(load(folderWith('eos-neg', { ...storiesConfig, eos_token_id: [2, -1] }))).rejects.toThrow(
      /field "eos_token_id": -1 is outside the vocabulary/,
    );
    await expect(load(folderWith('bos-512', { ...storiesConfig, bos_token_id: 512 }))).rejects.toThrow(
      /field "bos_token_id": 512 is outside the vocabulary/,
    );
  });
  it('rms_norm_eps must be a positive finite number', async () => {
    for (const eps of [0, -1e-5]) {
      await expect(load(folderWith(`eps-${eps}`, { ...storiesConfig, rms_norm_eps: eps }))).rejects.toThrow(
        /field "rms_norm_eps" must be a positive finite number, found/,
      );
    }
  });
  it('an absurd max_position_embeddings is refused at load, unless --max-model-len serves a shorter context', async () => {
    const dir = folderWith('positions-2e9', { ...storiesConfig, max_position_embeddings: 2_000_000_000 });
    await expect(load(dir, { numKvBlocks: 64 })).rejects.toThrow(
      /max_position_embeddings 2000000000 in .*config.json is beyond the 16777216 tokens .* --max-model-len/,
    );
    const e = await load(dir, { numKvBlocks: 64, maxModelLen: 512 });
    expect(e.info().maxModelLen).toBe(512);
    e.dispose();
  });
  it('no safetensors', async () => {
    await expect(load(folderWith('noweights', storiesConfig, false))).rejects.toThrow(/no safetensors weights/);
  });
  it('shape mismatch names the tensor', async () => {
    const dir = folderWith('shape', { ...storiesConfig, intermediate_size: 128 });
    await expect(load(dir)).rejects.toThrow(
      /model.layers.0.mlp.gate_proj.weight has shape \[172, 64\], expected \[128, 64\]/,
    );
  });
  it('bad options', async () => {
    await expect(load(storiesDir, { dtype: 'int4' })).rejects.toThrow(/unsupported dtype "int4"/);
    await expect(load(storiesDir, { device: 'tpu' })).rejects.toThrow(/unknown device "tpu"/);
    // Non-finite or out-of-range numbers are refused before any conversion to int (which would be UB).
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 2 ** 40, 1.5]) {
      await expect(load(storiesDir, { numKvBlocks: bad })).rejects.toThrow(/numKvBlocks must be an integer/);
    }
    for (const bad of [Number.NaN, -1, 2 ** 60, 0.5]) {
      await expect(load(storiesDir, { seed: bad })).rejects.toThrow(/seed must be a non-negative integer/);
    }
    await expect(load(storiesDir, { fp8Fuse: 1 })).rejects.toThrow(/fp8Fuse must be a boolean/);
    await expect(load(storiesDir, { gemvFuseFp8: 'yes' })).rejects.toThrow(/gemvFuseFp8 must be a boolean/);
    await expect(load(storiesDir, { invariantGemm: 1 })).rejects.toThrow(/invariantGemm must be a string/);
    await expect(load(storiesDir, { invariantGemm: 'mine' })).rejects.toThrow(
      /unknown invariantGemm "mine" \(the option or KVSERVE_INVARIANT_GEMM; supported: auto, cublaslt, own, wgmma, hybrid\)/,
    );
  });
  it('invariantGemm on the CPU: accepted, nothing to report (its GEMMs are always batch invariant)', async () => {
    for (const invariantGemm of ['own', 'wgmma']) {
      const e = await load(storiesDir, { batchInvariant: true, invariantGemm });
      expect(e.info().invariantGemm).toBeUndefined();
      e.dispose();
    }
  });
  it('fp8Fuse and gemvFuseFp8 on the CPU: nothing to fuse, reported off', async () => {
    const e = await load(storiesDir, { fp8Fuse: true, gemvFuseFp8: true });
    expect(e.info()).toMatchObject({ fp8Fuse: false, gemvFuseFp8: false, gemvFusion: '' });
    e.dispose();
  });
  it('llama3 rope with a non-positive low_freq_factor or original_max_position_embeddings', async () => {
    const llama3 = {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    };
    const lowZero = folderWith('llama3-low', { ...storiesConfig, rope_scaling: { ...llama3, low_freq_factor: 0 } });
    await expect(load(lowZero)).rejects.toThrow(/positive low_freq_factor/);
    const origZero = folderWith('llama3-orig', {
      ...storiesConfig,
      rope_scaling: { ...llama3, original_max_position_embeddings: 0 },
    });
    await expect(load(origZero)).rejects.toThrow(/positive original_max_position_embeddings/);
    const ok = folderWith('llama3-ok', { ...storiesConfig, rope_scaling: llama3 });
    (await load(ok)).dispose();
  });
  it('an attention shape the CPU cannot run is refused at load, not at the first step', async () => {
    // 128 query heads over 1 KV head (head_dim 8 would need hidden 1024: a config-only check, no weights needed).
    const dir = folderWith(
      'wide-gqa',
      { ...storiesConfig, hidden_size: 1024, num_attention_heads: 128, num_key_value_heads: 1 },
      false,
    );
    await expect(
      native.loadEngine(engineOptions({ model: join(dir, 'config.json'), dummyWeights: true })),
    ).rejects.toThrow(/more than 64 query heads/);
  });
});

describe('step errors', () => {
  let engine: NativeEngine;
  const prompt = loadExpected()[0]!.prompt_ids;
  const good = (): StepBatch =>
    buildBatch(
      [{ slot: 0, all: prompt, promptLen: prompt.length, start: 0, count: prompt.length, sample: true }],
      blockSize,
      4,
    );
  beforeAll(async () => {
    engine = await load(storiesDir);
  });
  afterAll(() => engine?.dispose());

  it('token id out of range', async () => {
    const b = good();
    b.tokenIds[2] = 512;
    await expect(engine.step(b)).rejects.toThrow(/tokenIds\[2\] = 512 is outside the vocabulary \[0, 512\)/);
  });
  it('inconsistent lengths and bad values', async () => {
    await expect(engine.step({ ...good(), positions: new Int32Array(2) })).rejects.toThrow(
      /positions has length 2, expected 5/,
    );
    await expect(engine.step({ ...good(), topP: new Float32Array(1) })).rejects.toThrow(
      /sequence 0: top_p = 0 .*is outside \(0, 1\]/,
    );
    await expect(engine.step({ ...good(), seeds: new Int32Array(1) as unknown as Uint32Array })).rejects.toThrow(
      /seeds must be an Uint32Array/,
    );
    const b = good();
    b.blockTables[0] = 1_000_000;
    await expect(engine.step(b)).rejects.toThrow(/blockTables\[0\] = 1000000 is not a block id/);
    const c = good();
    c.positions[4] = 5;
    await expect(engine.step(c)).rejects.toThrow(/positions\[4\] = 5 is outside its sequence's context/);
  });
  it('bad values are pinned on their sequences; a broken layout on none', async () => {
    const other = loadExpected()[1]!.prompt_ids;
    const three = () =>
      buildBatch(
        [0, 1, 2].map((slot) => ({
          slot,
          all: slot === 1 ? other : prompt,
          promptLen: 5,
          start: 0,
          count: 5,
          sample: true,
        })),
        blockSize,
        4,
      );
    const b = three();
    b.topP[1] = 0;
    b.tokenIds[12] = 600; // sequence 2's third token
    b.repetitionPenalty[1] = -1; // a second fault of sequence 1: only its first is reported
    const err = await engine.step(b).catch((e) => e);
    expect(err.faults).toEqual([
      { seq: 1, message: expect.stringMatching(/^top_p = 0 \(as the engine's 32-bit float\) is outside \(0, 1\]$/) },
      { seq: 2, message: expect.stringMatching(/tokenIds\[12\] = 600 is outside the vocabulary/) },
    ]);
    const whole = three();
    whole.queryStart[1] = 7;
    whole.queryStart[2] = 6;
    const layout = await engine.step(whole).catch((e) => e);
    expect(layout.message).toMatch(/queryStart\[2\] decreases/);
    expect(layout.faults).toBeUndefined();
    // Run again without the faulted sequences, the step is fine.
    const ok = await engine.step(
      buildBatch([{ slot: 0, all: prompt, promptLen: 5, start: 0, count: 5, sample: true }], blockSize, 4),
    );
    expect(ok.tokens[0]).toBe(loadExpected()[0]!.greedy_ids[0]);
    expect(ok.rowFaults).toBeUndefined();
  });
  it('ragged history and bias offsets must split their arrays into rows', async () => {
    const ragged = {
      historyStart: Int32Array.from([0, 9]),
      historyOutputStart: Int32Array.from([0]),
      historyTokens: new Int32Array(5),
    };
    await expect(engine.step({ ...good(), ...ragged })).rejects.toThrow(
      /historyStart\[0\] is not a range of historyTokens/,
    );
    await expect(
      engine.step({
        ...good(),
        ...ragged,
        historyStart: Int32Array.from([0, 5]),
        historyOutputStart: Int32Array.from([6]),
      }),
    ).rejects.toThrow(/historyOutputStart\[0\] lies outside its row's history/);
    await expect(
      engine.step({
        ...good(),
        biasStart: Int32Array.from([1, 0]),
        biasTokens: new Int32Array(1),
        biasValues: new Float32Array(1),
      }),
    ).rejects.toThrow(/biasStart\[0\] is not a range of biasTokens/);
  });
  it('a second step while one runs rejects; the engine keeps working', async () => {
    const first = engine.step(good());
    await expect(engine.step(good())).rejects.toThrow(/already running/);
    expect((await first).tokens[0]).toBe(loadExpected()[0]!.greedy_ids[0]);
    expect((await engine.step(good())).tokens[0]).toBe(loadExpected()[0]!.greedy_ids[0]);
  });
  it('a disposed engine rejects', async () => {
    const e = await load(storiesDir);
    e.dispose();
    await expect(e.step(good())).rejects.toThrow(/disposed/);
    expect(() => e.info()).toThrow(/disposed/);
  });
});

describe('the native step time', () => {
  it('each step reports its time on the engine thread, within the time the step took as JS saw it', async () => {
    const prompt = loadExpected()[0]!.prompt_ids;
    const engine = await load(storiesDir);
    try {
      const batch = buildBatch(
        [{ slot: 0, all: prompt, promptLen: prompt.length, start: 0, count: prompt.length, sample: true }],
        blockSize,
        4,
      );
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const r = await engine.step(batch);
        const wall = performance.now() - t0;
        expect(r.nativeMs).toBeGreaterThan(0);
        expect(r.nativeMs).toBeLessThan(wall);
      }
    } finally {
      engine.dispose();
    }
  });
});

describe('dispose while a step runs', () => {
  it('the step in flight still settles, later steps reject, and the process carries on', async () => {
    const prompt = loadExpected()[0]!.prompt_ids;
    const batch = buildBatch(
      [{ slot: 0, all: prompt, promptLen: prompt.length, start: 0, count: prompt.length, sample: true }],
      blockSize,
      4,
    );
    const engine = await load(storiesDir);
    const inFlight = engine.step(batch);
    engine.dispose();
    expect((await inFlight).tokens[0]).toBe(loadExpected()[0]!.greedy_ids[0]);
    await expect(engine.step(batch)).rejects.toThrow(/disposed/);
  });
});
