// The real server with several models: startServe over a native addon the test watches (each engine it loads,
// its steps and its disposal, so a test can see an engine freed or break one underneath the server), the admin
// API on, and the small clients the multi-model tests share.
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { finishEngineConfig, repoRoot, type ServerConfig, serverDefaults } from '../../../src/config.js';
import {
  loadNative,
  type NativeEngine,
  type NativeEngineOptions,
  type NativeModule,
  type StepBatch,
} from '../../../src/runner/binding.js';
import type { ModelSpec } from '../../../src/server/model-spec.js';
import { type ServeHandle, startServe } from '../../../src/server/serve-cli.js';
import { storiesDir } from './stories.js';

export const ADMIN_KEY = 'admin-secret-key-for-tests';
export const qwenDir = resolve(repoRoot, 'test', 'fixtures', 'qwen2-bias');

export interface WatchedEngine {
  opts: NativeEngineOptions;
  /** The addon's own engine object (dispose() on it breaks the engine under the server). */
  native: NativeEngine;
  steps: number;
  disposed: boolean;
  /** Once a step it sees holds, the steps after it wait for `gate` (hold()). */
  holdAfter?: (batch: StepBatch) => boolean;
  holding?: boolean;
  gate?: Promise<void>;
}

/**
 * Holds an engine's steps that come after the first step for which `after` holds (that step runs; its
 * requests stay in flight, unfinished, from then on) until the function returned is called.
 */
export function hold(engine: WatchedEngine, after: (batch: StepBatch) => boolean): () => void {
  let release!: () => void;
  engine.gate = new Promise((r) => {
    release = r;
  });
  engine.holdAfter = after;
  return () => {
    engine.holdAfter = undefined;
    engine.holding = false;
    release();
  };
}

/** Whether a step prefills the prompt `ids` of one request: its tokens after the last full KV block, which
 *  are computed even when the prefix cache holds the blocks before them. */
export const prefills =
  (ids: readonly number[], blockSize = 16) =>
  (batch: StepBatch) => {
    const tail = ids.slice(Math.floor((ids.length - 1) / blockSize) * blockSize);
    const t = batch.tokenIds;
    for (let s = 0; s + tail.length <= t.length; s++) if (tail.every((id, k) => t[s + k] === id)) return true;
    return false;
  };

export interface NativeControl {
  /** Further loads fail. */
  failLoads: boolean;
  /** Checked before each step: when it holds, the engine is disposed underneath (that step and all later ones
   *  reject), once. */
  breakWhen?: (batch: StepBatch) => boolean;
}

/** The real addon, with every engine it loads recorded, and `control` to break it. */
export function watchedNative(): { native: NativeModule; engines: WatchedEngine[]; control: NativeControl } {
  const real = loadNative();
  const engines: WatchedEngine[] = [];
  const control: NativeControl = { failLoads: false };
  const native: NativeModule = {
    buildEngine: (...a) => real.buildEngine(...a),
    engineTarget: () => real.engineTarget(),
    cudaAvailable: () => real.cudaAvailable(),
    builtWithCuda: () => real.builtWithCuda(),
    loadEngine: async (opts, onProgress) => {
      if (control.failLoads) throw new Error('load refused by the test');
      const engine = await real.loadEngine(opts, onProgress);
      const rec: WatchedEngine = { opts, native: engine, steps: 0, disposed: false };
      engines.push(rec);
      return {
        info: () => engine.info(),
        step: async (batch) => {
          if (rec.holding) await rec.gate;
          if (rec.holdAfter?.(batch)) rec.holding = true;
          rec.steps++;
          if (control.breakWhen?.(batch)) {
            control.breakWhen = undefined;
            engine.dispose();
          }
          return engine.step(batch);
        },
        dispose: () => {
          rec.disposed = true;
          engine.dispose();
        },
      };
    },
  };
  return { native, engines, control };
}

/** A copy of the demo model in a temporary folder: "a new copy" to switch to, or a second model. */
export function storiesCopy(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'kvserve-models-')), 'stories-copy');
  cpSync(storiesDir, dir, { recursive: true });
  return dir;
}

export function serverConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return finishEngineConfig<ServerConfig>({
    ...serverDefaults(),
    model: storiesDir,
    device: 'cpu',
    port: 0,
    threads: 1,
    logLevel: 'silent',
    apiKey: undefined,
    adminApiKey: ADMIN_KEY,
    drainTimeout: 30,
    ...overrides,
  });
}

/** startServe of `config` (one model named `name`), over `native`. */
export function startNamed(name: string, config: ServerConfig, native: NativeModule): Promise<ServeHandle> {
  const spec: ModelSpec = { name, config, gpuShare: config.gpuMemoryUtilization, source: config.model };
  return startServe(config, undefined, { models: [spec], native });
}

export async function admin(url: string, method: string, path: string, body?: unknown, key = ADMIN_KEY) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

export interface AdminModel {
  name: string;
  state: string;
  source: string | null;
  loading: { source: string; kind: string; stage: string; progress: number } | null;
  error: string | null;
  restarts: number;
  in_flight: number;
  draining_instances: number;
}

export async function adminModels(url: string): Promise<AdminModel[]> {
  return (await admin(url, 'GET', '/admin/models')).json.data as AdminModel[];
}

/** Polls the admin listing until `cond` holds: at most `ms` (and 50 ms between looks). */
export async function untilModels(url: string, cond: (m: AdminModel[]) => boolean, ms = 30_000): Promise<AdminModel[]> {
  const end = Date.now() + ms;
  for (;;) {
    const models = await adminModels(url);
    if (cond(models)) return models;
    if (Date.now() > end) throw new Error(`timed out waiting on /admin/models: ${JSON.stringify(models)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
