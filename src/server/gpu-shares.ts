// GPU memory shared by explicit fractions. Each engine holds its own gpu-memory-utilization while it lives
// (weights, activations, KV cache). The native side sizes a KV cache from what is in use on the whole device
// (engines/cuda/cuda_backend.cc: budget = utilization × total − used), so a new engine is asked for the shares
// of every engine alive or loading plus its own: it then takes its own share only. The shares alive at once
// must fit in the device; a switched model's old engine counts until it is freed.
import { ApiError } from './errors.js';
import type { ModelSlot } from './model-slot.js';
import type { ModelSpec } from './model-spec.js';

export interface ShareHolder {
  slot: ModelSlot;
  /** A load in flight, which holds its share from the start. */
  pending: { spec: ModelSpec } | undefined;
}

/** The shares held by the engines alive or loading of `holders`, but `except`'s load (a new one supersedes it). */
export function sharesInUse(holders: Iterable<ShareHolder>, except?: ShareHolder): number {
  let used = 0;
  for (const h of holders) {
    if (h.slot.instance) used += h.slot.instance.gpuShare;
    for (const r of h.slot.retiring) used += r.gpuShare;
    if (h.pending && h !== except) used += h.pending.spec.gpuShare;
  }
  return used;
}

/** What the native side is asked for a new engine of `spec`; on the GPU, a 409 when its share does not fit. */
export function gpuBudget(spec: ModelSpec, used: number, onGpu: boolean): number {
  const total = used + spec.gpuShare;
  if (total > 1 + 1e-9 && onGpu) {
    throw new ApiError(
      'insufficient_gpu_memory',
      `model \`${spec.name}\` asks for gpu-memory-utilization ${spec.gpuShare}, but the models on the GPU hold ` +
        `${used.toFixed(2)} of it now (a switched model's old engine counts until it is freed); ask for at most ` +
        `${Math.max(0, 1 - used).toFixed(2)}, or unload a model first`,
      'gpu_memory_utilization',
    );
  }
  return Math.min(1, total);
}
