// Which models `kvserve serve` starts with. One `--model DIR` (or none: the demo) is one model named by
// --served-model-name or its folder, exactly as before. `--model NAME=DIR` (repeatable) and `--models-file`
// name several; the server's flags are each one's defaults, a models file entry's own settings win. GPU memory
// is split by explicit fractions: an entry's gpu-memory-utilization, and the rest of the server's
// --gpu-memory-utilization shared evenly by the models that name none.
import type { Logger } from 'pino';
import { ConfigError, type ServerConfig } from '../config.js';
import type { ProgressFn } from '../load-progress.js';
import { resolveConfig } from './model-loader.js';
import { defaultModelName, type ModelSpec, modelSpec, namedModelArg, readModelsFile } from './model-spec.js';

/** Takes every `--model` out of argv (the flag parser keeps only the last of a repeated flag). */
export function takeModelFlags(argv: string[]): { argv: string[]; models: string[] } {
  const out: string[] = [];
  const models: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--model') {
      const value = argv[++i];
      if (value === undefined) throw new ConfigError('--model needs a value');
      models.push(value);
    } else if (arg.startsWith('--model=')) {
      models.push(arg.slice('--model='.length));
    } else {
      out.push(arg);
    }
  }
  // One plain --model goes back to the parser: the single-model server is what it always was.
  if (models.length === 1 && namedModelArg(models[0]!).name === undefined)
    return { argv: [...out, '--model', models[0]!], models: [] };
  return { argv: out, models };
}

const hasShare = (entry: unknown) =>
  typeof entry === 'object' &&
  entry !== null &&
  ('gpu-memory-utilization' in entry || 'gpu_memory_utilization' in entry);

/** The specs of the models named at start-up, each config final (Hub ids downloaded, engine flags applied). */
export async function initialSpecs(
  parsed: ServerConfig,
  modelArgs: string[],
  log: Logger,
  o: { hubProgress: boolean; progress?: ProgressFn },
): Promise<ModelSpec[]> {
  const resolve = (c: ServerConfig) => resolveConfig(c, log, { hubProgress: o.hubProgress, progress: o.progress });
  if (modelArgs.length === 0 && !parsed.modelsFile) {
    const config = await resolve(parsed);
    return [
      {
        name: defaultModelName(config),
        config,
        gpuShare: config.gpuMemoryUtilization,
        source: config.engine || config.model,
      },
    ];
  }
  if (parsed.servedModelName) {
    throw new ConfigError('--served-model-name names the one model; with several, name each: --model NAME=DIR');
  }
  const entries: Array<{ entry: unknown; where: string }> = modelArgs.map((arg, i) => {
    const { name, model } = namedModelArg(arg);
    return { entry: { name: name ?? defaultModelName({ ...parsed, model }), model }, where: `--model #${i + 1}` };
  });
  if (parsed.modelsFile) {
    for (const [i, entry] of readModelsFile(parsed.modelsFile).entries()) {
      entries.push({ entry, where: `--models-file ${parsed.modelsFile} entry ${i + 1}` });
    }
  }
  const explicit = entries.filter((e) => hasShare(e.entry)).map((e) => modelSpec(e.entry, parsed, e.where, 0));
  const taken = explicit.reduce((a, s) => a + s.gpuShare, 0);
  const others = entries.length - explicit.length;
  const evenShare = others > 0 ? (parsed.gpuMemoryUtilization - taken) / others : 0;
  const specs = entries.map((e) => modelSpec(e.entry, parsed, e.where, evenShare));
  if (others > 0 && evenShare < 0.05) {
    throw new ConfigError(
      `the models with a gpu-memory-utilization of their own take ${taken.toFixed(2)}, which leaves ` +
        `${(parsed.gpuMemoryUtilization - taken).toFixed(2)} of --gpu-memory-utilization ${parsed.gpuMemoryUtilization} ` +
        `for ${others} more: give each model its own share`,
    );
  }
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new ConfigError(`two models are named "${s.name}": give each its own NAME=`);
    seen.add(s.name);
  }
  const out: ModelSpec[] = [];
  for (const s of specs) out.push({ ...s, config: await resolve(s.config) });
  return out;
}
