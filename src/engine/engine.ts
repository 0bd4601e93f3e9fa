// The factory the server and `kvserve generate` use: load the native engine for an EngineConfig and start
// the loop over it. The KV pool's size and the context length come back from the native side (it knows
// the memory); the scheduler is sized from what it reports.
import { dirname } from 'node:path';
import { configPathOf, int8Defaults, planInt8 } from '../build/int8-build.js';
import type { EngineConfig } from '../config.js';
import { loadNative, type NativeEngineInfo, type NativeEngineOptions, type NativeModule } from '../runner/binding.js';
import { EngineLoop } from './engine-loop.js';
import type { EngineClient } from './types.js';

export interface Engine {
  client: EngineClient;
  info: NativeEngineInfo;
  /** Stops the loop (live requests end with 'abort') and frees the native engine. */
  close(): Promise<void>;
}

const GiB = 1024 ** 3;

export function nativeOptions(config: EngineConfig, native: NativeModule): NativeEngineOptions {
  return {
    model: config.model,
    ...(config.engine ? { engine: config.engine } : {}),
    dummyWeights: config.loadFormat === 'dummy',
    privateWeights: config.loadFormat === 'private',
    device: config.device === 'auto' ? (native.cudaAvailable() ? 'cuda' : 'cpu') : config.device,
    dtype: config.dtype,
    numThreads: config.threads,
    blockSize: config.blockSize,
    numKvBlocks: config.numKvBlocks,
    kvCacheBytes: Math.round(config.kvCacheMemoryGiB * GiB),
    gpuMemoryUtilization: config.gpuMemoryUtilization,
    maxNumBatchedTokens: config.maxNumBatchedTokens,
    maxNumSeqs: config.maxNumSeqs,
    maxModelLen: config.maxModelLen,
    seed: config.seed,
    batchInvariant: config.batchInvariant,
    // An engine is run as it was built (its manifest says whether it is fp8 or int8).
    ...(config.quantization !== 'none' && !config.engine ? { quantize: config.quantization } : {}),
    kvCacheDtype: config.kvCacheDtype === 'auto' ? 'auto' : 'fp8',
  };
}

/** nativeOptions, and for --quantization int8 at load on the GPU the calibration that kvserve build would run
 *  with its defaults (int8-build.ts). On the CPU nothing is tokenized: the native load refuses int8 there in one
 *  line. */
export async function loadOptions(config: EngineConfig, native: NativeModule): Promise<NativeEngineOptions> {
  const o = nativeOptions(config, native);
  if (o.quantize !== 'int8' || o.device !== 'cuda') return o;
  const dummy = config.loadFormat === 'dummy';
  const configPath = configPathOf(config.model, dummy);
  const plan = await planInt8(int8Defaults(), {
    dir: config.tokenizer || (dummy && config.model.endsWith('.json') ? dirname(config.model) : config.model),
    configPath,
    dummy,
    maxModelLen: config.maxModelLen,
  });
  return { ...o, quantization: plan.request };
}

export async function createEngine(
  config: EngineConfig,
  native: NativeModule = loadNative(),
  onProgress?: (stage: string, fraction: number) => void,
): Promise<Engine> {
  const engine = await native.loadEngine(await loadOptions(config, native), onProgress);
  const info = engine.info();
  let loop: EngineLoop;
  try {
    if (info.numKvBlocks < 1) throw new Error(`the native engine reports ${info.numKvBlocks} KV blocks; nothing fits`);
    loop = new EngineLoop(
      {
        maxNumBatchedTokens: config.maxNumBatchedTokens,
        maxNumSeqs: config.maxNumSeqs,
        maxModelLen: info.maxModelLen,
        blockSize: info.blockSize,
        numBlocks: info.numKvBlocks,
        enablePrefixCaching: config.enablePrefixCaching,
        vocabSize: info.vocabSize,
        eosTokenIds: info.eosTokenIds,
      },
      engine,
    );
  } catch (err) {
    engine.dispose();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    client: loop,
    info,
    close: () => (closing ??= loop.close().then(() => engine.dispose())),
  };
}
