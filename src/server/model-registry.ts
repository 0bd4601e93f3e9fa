// The served models by name, and their lifecycle: each name has its own engine loop, KV budget and limits, so
// one model's load never starves another. Requests route by `model`; the admin API loads, switches and
// unloads names while the others serve; an engine that fails is restarted by itself with backoff.
//   - load: a new name, loading in the background (503 model_loading until it is up);
//   - switch: the name keeps serving its instance while the new one loads; once that is up, new requests go to
//     it and the old one finishes what it holds (model-instance.ts), then is freed. A load that fails leaves
//     the old one serving, and the reason in `error`;
//   - unload: the name stops routing at once (404), its requests finish, then its instances are freed;
//   - an engine fault (EngineClient.onFault): its requests end with a 503, the name answers 503 with
//     Retry-After, its engine is freed and loaded again after a backoff that doubles with each fault in a row.
// GPU memory is shared by explicit fractions (gpu-shares.ts); restarts follow restart-policy.ts.
import { ApiError } from './errors.js';
import { gpuBudget, sharesInUse } from './gpu-shares.js';
import type { ModelInstance } from './model-instance.js';
import type { LoadedModel } from './model-slot.js';
import { ModelSlot } from './model-slot.js';
import type { ModelSpec } from './model-spec.js';
import { logProgress, type ProgressFn } from '../load-progress.js';
import { RestartPolicy } from './restart-policy.js';

export type ModelLoader = (
  spec: ModelSpec,
  o: { onProgress: ProgressFn; gpuMemoryUtilization: number },
) => Promise<LoadedModel>;

export interface RegistryOptions {
  /** Loads a spec; without one, the registry only serves the models it is given (buildApp's). */
  loader?: ModelLoader;
  /** What a replaced or unloaded instance's requests get to finish (--drain-timeout). */
  graceMs?: number;
  /** The first restart's delay after an engine fault; it doubles with each fault in a row (capped at 60 s). */
  restartBackoffMs?: number;
  /** Faults in a row after which a model stays failed (and /livez fails, so the process gets restarted). */
  maxRestarts?: number;
  /** Whether a spec's engine runs on the GPU, where the shares must fit in the device's memory. */
  onGpu?: (spec: ModelSpec) => boolean;
  log?: RegistryLog;
}

/** A name appeared (the app wires its metrics and step observer) or is gone for good. */
export interface RegistryHooks {
  added?: (slot: ModelSlot) => void;
  removed?: (name: string) => void;
}

export interface RegistryLog {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** A load in flight: for the admin API's progress, and superseded by a later one of the same name. */
export interface PendingLoad {
  spec: ModelSpec;
  kind: 'load' | 'switch' | 'restart';
  stage: string;
  fraction: number;
}

interface Entry {
  slot: ModelSlot;
  spec: ModelSpec | undefined;
  seq: number; // bumped by every load and by unload: a load that finds another seq was superseded
  pending: PendingLoad | undefined;
  restarts: RestartPolicy;
  timer: NodeJS.Timeout | undefined;
  retirements: Set<Promise<void>>; // instances finishing their requests, until they are freed
}

const noLog: RegistryLog = { info() {}, warn() {}, error() {} };

export class ModelRegistry {
  private readonly entries = new Map<string, Entry>();
  /** Unloaded names whose instances still finish their requests (listed as draining, never routed). */
  private readonly draining = new Map<string, Entry>();
  private closed = false;
  private readonly log: RegistryLog;
  readonly hooks: RegistryHooks = {};

  constructor(private readonly o: RegistryOptions = {}) {
    this.log = o.log ?? noLog;
  }

  /** Routable names, in the order they were added; the first serves requests that name no model. */
  slots(): ModelSlot[] {
    return [...this.entries.values()].map((e) => e.slot);
  }

  /** Every name, the draining ones included, with its load in flight. */
  list(): Array<{ slot: ModelSlot; spec: ModelSpec | undefined; pending: PendingLoad | undefined }> {
    return [...this.entries.values(), ...this.draining.values()].map((e) => ({
      slot: e.slot,
      spec: e.spec,
      pending: e.pending,
    }));
  }

  defaultSlot(): ModelSlot | undefined {
    return this.entries.values().next().value?.slot;
  }

  get(name: string): ModelSlot | undefined {
    return this.entries.get(name)?.slot;
  }

  /** The slot a request's `model` names (none: the first), or a 404 in OpenAI's words. */
  route(model: string | null | undefined): ModelSlot {
    const slot = model === undefined || model === null ? this.defaultSlot() : this.get(model);
    if (slot) return slot;
    const served = [...this.entries.keys()].map((n) => `\`${n}\``).join(', ') || 'no model';
    throw new ApiError(
      'model_not_found',
      model === undefined || model === null
        ? 'this server serves no model now'
        : `The model \`${model}\` does not exist; this server serves ${served}`,
      'model',
    );
  }

  /** A name served by a model the caller loaded (buildApp's), or an empty slot to fill later. */
  add(slot: ModelSlot): void {
    this.taken(slot.name);
    this.entries.set(slot.name, this.entry(slot, undefined));
    if (slot.instance) this.activated(this.entries.get(slot.name)!, slot.instance);
    this.hooks.added?.(slot);
  }

  /** A new name, loading in the background; the promise settles when it serves or its load failed. */
  load(spec: ModelSpec, o: { startup?: boolean } = {}): { slot: ModelSlot; ready: Promise<void> } {
    this.taken(spec.name);
    const slot = new ModelSlot(undefined, { name: spec.name, maxQueue: spec.config.maxQueue });
    slot.startup = o.startup ?? false;
    const entry = this.entry(slot, spec);
    const ready = this.startLoad(entry, spec, 'load');
    this.entries.set(spec.name, entry);
    this.hooks.added?.(slot);
    return { slot, ready };
  }

  /** The name serves `spec` once it is up; until then (and if it fails) what serves it now goes on. */
  switchTo(name: string, spec: ModelSpec): Promise<void> {
    const entry = this.must(name);
    const kind = entry.slot.instance ? 'switch' : 'load';
    const ready = this.startLoad(entry, spec, kind);
    clearTimeout(entry.timer); // a restart waiting for its turn gives way to the new model
    return ready;
  }

  /** Stops routing the name now; resolves once its instances have finished their requests and are freed. */
  async unload(name: string): Promise<void> {
    const entry = this.must(name);
    this.entries.delete(name);
    this.draining.set(name, entry);
    entry.seq++;
    entry.pending = undefined;
    clearTimeout(entry.timer);
    const inst = entry.slot.detach('draining');
    if (inst) this.retire(entry, inst, `the model \`${name}\` was unloaded before this request finished; retry it`);
    this.log.info({ model: name }, 'unloading: its requests finish, then its engine is freed');
    await this.settled(entry);
    this.draining.delete(name);
    this.hooks.removed?.(name);
    this.log.info({ model: name }, 'unloaded');
  }

  /** Server shutdown: no more loads or restarts; every engine (loading ones once they are up) is freed. */
  async closeAll(): Promise<void> {
    this.closed = true;
    const all = [...this.entries.values(), ...this.draining.values()];
    await Promise.all(
      all.map(async (e) => {
        e.seq++;
        clearTimeout(e.timer);
        await e.slot.instance?.close();
        await this.settled(e);
      }),
    );
    await Promise.all(this.loadsInFlight);
  }

  /** Whether some model's engine kept failing past --max-restarts: the process should be restarted. */
  get fatal(): string | undefined {
    for (const e of this.entries.values()) if (e.restarts.exhausted) return e.slot.name;
    return undefined;
  }

  private readonly loadsInFlight = new Set<Promise<void>>();

  private entry(slot: ModelSlot, spec: ModelSpec | undefined): Entry {
    return {
      slot,
      spec,
      seq: 0,
      pending: undefined,
      restarts: new RestartPolicy(this.o.restartBackoffMs ?? 1000, this.o.maxRestarts ?? 5),
      timer: undefined,
      retirements: new Set(),
    };
  }

  private must(name: string): Entry {
    const entry = this.entries.get(name);
    if (entry) return entry;
    this.route(name); // throws the 404
    throw new Error(`no model ${name}`);
  }

  private taken(name: string): void {
    if (this.entries.has(name) || this.draining.has(name)) {
      throw new ApiError('model_exists', `a model named \`${name}\` is already served (PUT switches it)`, 'name');
    }
  }

  private startLoad(entry: Entry, spec: ModelSpec, kind: PendingLoad['kind']): Promise<void> {
    const loader = this.o.loader;
    if (!loader) throw new Error('this registry has no loader');
    if (this.closed) throw new ApiError('server_shutting_down', 'the server is shutting down', null, 1);
    const seq = ++entry.seq;
    // The share of what this name serves now is freed only after the switch, so it counts against the new one.
    const gpuMemoryUtilization = this.gpuBudget(spec, entry);
    const pending: PendingLoad = { spec, kind, stage: 'starting', fraction: 0 };
    entry.pending = pending;
    // The log gets a bounded number of records a stage (load-progress.ts), /health and the admin API all of it.
    // With one model, the records are those of the single-model server (no model field).
    const record = logProgress({
      info: (fields, msg) =>
        this.log.info(this.entries.size + this.draining.size > 1 ? { model: spec.name, ...fields } : fields, msg),
    });
    const onProgress: ProgressFn = (stage, fraction) => {
      pending.stage = stage;
      pending.fraction = fraction;
      if (!entry.slot.instance) entry.slot.progress(stage, fraction);
      record(stage, fraction);
    };
    this.log.info({ model: spec.name, source: spec.source, kind }, 'loading a model');
    const run = loader(spec, { onProgress, gpuMemoryUtilization }).then(
      (model) => this.loaded(entry, seq, spec, kind, model),
      (err: unknown) => {
        this.loadFailed(entry, seq, spec, kind, err);
        throw err;
      },
    );
    const tracked = run.then(
      () => undefined,
      () => undefined,
    );
    this.loadsInFlight.add(tracked);
    void tracked.finally(() => this.loadsInFlight.delete(tracked));
    return run;
  }

  private async loaded(entry: Entry, seq: number, spec: ModelSpec, kind: string, model: LoadedModel): Promise<void> {
    if (seq !== entry.seq || this.closed) {
      // Superseded (a later switch, an unload, shutdown): what it loaded is not needed.
      await model.release?.engine();
      await model.release?.threads();
      return;
    }
    entry.pending = undefined;
    entry.spec = spec;
    entry.slot.error = undefined;
    const previous = entry.slot.ready(model, spec.source);
    entry.slot.instance!.gpuShare = spec.gpuShare;
    this.activated(entry, entry.slot.instance!);
    if (previous)
      this.retire(entry, previous, `the model \`${spec.name}\` was switched before this request finished; retry it`);
    const info = model.info;
    this.log.info(
      {
        model: spec.name,
        kind,
        ...(info
          ? {
              architecture: info.architecture,
              device: info.device,
              dtype: info.dtype,
              kvCacheDtype: info.kvCacheDtype,
              maxModelLen: info.maxModelLen,
              kvBlocks: info.numKvBlocks,
              blockSize: info.blockSize,
            }
          : {}),
      },
      'ready',
    );
  }

  private loadFailed(entry: Entry, seq: number, spec: ModelSpec, kind: string, err: unknown): void {
    if (seq !== entry.seq || this.closed) return;
    const message = err instanceof Error ? err.message : String(err);
    entry.pending = undefined;
    entry.slot.error = message;
    this.log.error({ model: spec.name, kind, error: message }, 'loading failed');
    if (kind === 'restart') {
      this.scheduleRestart(entry);
    } else if (!entry.slot.instance) {
      entry.slot.detach('failed');
    }
    // A switch that failed: the old instance serves on; `error` says why.
  }

  /** An instance serves now: its engine's faults are the registry's to handle. */
  private activated(entry: Entry, inst: ModelInstance): void {
    entry.restarts.serving();
    inst.model.client.onFault = (err) => this.engineFailed(entry, inst, err);
  }

  private retire(entry: Entry, inst: ModelInstance, cutMessage: string): void {
    const graceMs = this.o.graceMs ?? 10_000;
    this.track(
      entry,
      inst,
      inst.retire(graceMs, () => new ApiError('model_unavailable', cutMessage)),
    );
  }

  private track(entry: Entry, inst: ModelInstance, freed: Promise<void>): void {
    const done = entry.slot.retire(inst, freed).catch((err: unknown) => {
      this.log.error({ model: entry.slot.name, error: String(err) }, 'freeing an engine failed');
    });
    entry.retirements.add(done);
    void done.finally(() => entry.retirements.delete(done));
  }

  private engineFailed(entry: Entry, inst: ModelInstance, err: unknown): void {
    const name = entry.slot.name;
    const message = err instanceof Error ? err.message : String(err);
    const cut = new ApiError(
      'model_unhealthy',
      `the engine of the model \`${name}\` failed while generating this request; it restarts: retry in a few seconds`,
      null,
      Math.max(1, Math.ceil(entry.restarts.nextDelayMs / 1000)),
    );
    if (entry.slot.instance !== inst) {
      // A retiring instance: fail its requests now and free it; what serves the name is not touched.
      void inst.fail(cut); // already tracked by its retirement, which this speeds up
      return;
    }
    this.log.error({ model: name, error: message }, 'engine failed: restarting it');
    entry.restarts.engineFailed();
    entry.slot.detach('unhealthy');
    entry.slot.error = `engine failed: ${message}`;
    this.track(entry, inst, inst.fail(cut));
    this.scheduleRestart(entry);
  }

  /** The next restart, after the backoff and once the failed engine is freed (its memory is the new one's). */
  private scheduleRestart(entry: Entry): void {
    const spec = entry.spec;
    const delay = entry.restarts.failure();
    if (!spec || delay === undefined || this.closed) {
      entry.slot.detach('failed');
      if (spec && !this.closed)
        this.log.error({ model: spec.name, restarts: entry.slot.restarts }, 'engine restarts exhausted: giving up');
      return;
    }
    entry.slot.detach('unhealthy');
    entry.slot.retryAt = Date.now() + delay;
    entry.timer = setTimeout(() => {
      void this.settled(entry).then(() => {
        if (this.closed || this.entries.get(spec.name) !== entry || entry.slot.state !== 'unhealthy') return;
        entry.slot.restarts++;
        try {
          this.startLoad(entry, spec, 'restart').catch(() => undefined);
        } catch (err) {
          this.loadFailed(entry, entry.seq, spec, 'restart', err);
        }
      });
    }, delay);
  }

  /** Resolves once every retiring instance of the entry is freed. */
  private async settled(entry: Entry): Promise<void> {
    while (entry.retirements.size > 0) await Promise.all(entry.retirements);
  }

  /** The GPU shares of every engine alive or loading (but `except`'s load, which a new one supersedes). */
  gpuShareInUse(except?: Entry): number {
    return sharesInUse([...this.entries.values(), ...this.draining.values()], except);
  }

  private gpuBudget(spec: ModelSpec, replacing: Entry): number {
    return gpuBudget(spec, this.gpuShareInUse(replacing), this.o.onGpu?.(spec) ?? false);
  }
}
