// Loading progress while weights load: the native loader reports the "weights" stage once per tensor as the
// backend prepares it, so a model of many tensors shows many intermediate values. The byte counts are checked
// against the checkpoint's own safetensors header, read here; and stderr's progress lines move (non-TTY:
// every quarter; TTY: every percent), as do the server's progress records (every tenth).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { engineDefaults, finishEngineConfig, repoRoot, type EngineConfig } from '../../src/config.js';
import { createEngine } from '../../src/engine/engine.js';
import { logProgress, stderrProgress } from '../../src/load-progress.js';
import { storiesDir } from './harness.js';

/** Byte size of every tensor in a safetensors file: [u64 LE header length][JSON header][data]. */
function tensorBytes(file: string): number[] {
  const buf = readFileSync(file);
  const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8')) as Record<
    string,
    { data_offsets: [number, number] }
  >;
  return Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .map(([, t]) => t.data_offsets[1] - t.data_offsets[0]);
}

async function loadEvents(config: Partial<EngineConfig>): Promise<Array<[string, number]>> {
  const events: Array<[string, number]> = [];
  const engine = await createEngine(
    finishEngineConfig({ ...engineDefaults(), device: 'cpu', threads: 1, ...config }),
    undefined,
    (s, f) => events.push([s, f]),
  );
  await engine.close();
  return events;
}

describe('native loading progress on stories260K', () => {
  const sizes = tensorBytes(join(storiesDir, 'model.safetensors'));
  const total = sizes.reduce((a, b) => a + b, 0);

  test.each([
    ['auto (weights used in place)', 'auto'],
    ['bfloat16 (each tensor converted)', 'bfloat16'],
  ] as const)('dtype %s: config, then one weights report per tensor, then backend', async (_, dtype) => {
    const events = await loadEvents({ dtype });
    const stages = events.map(([s]) => s).filter((s, i, all) => s !== all[i - 1]);
    expect(stages).toEqual(['config', 'weights', 'backend']);
    const weights = events.filter(([s]) => s === 'weights').map(([, f]) => f);
    expect(sizes.length).toBeGreaterThan(40);
    expect(weights).toHaveLength(1 + sizes.length); // 0, then one per tensor, the last at 1
    expect(weights[0]).toBe(0);
    expect(weights.at(-1)).toBe(1);
    // Each step is exactly one tensor's bytes of the checkpoint's total.
    const steps = weights.slice(1).map((f, i) => Math.round((f - weights[i]!) * total));
    expect(steps.sort((a, b) => a - b)).toEqual([...sizes].sort((a, b) => a - b));
  });
});

describe('progress on stderr', () => {
  const sink = (isTTY: boolean) => {
    const writes: string[] = [];
    return { writes, out: { isTTY, write: (s: string) => writes.push(s) > 0 } };
  };
  const feed = [0, 0.1, 0.3, 0.31, 0.6, 0.8, 0.999, 1];

  test('in a log: the start, each quarter crossed, the end', () => {
    const s = sink(false);
    const p = stderrProgress('loading: ', s.out);
    for (const f of feed) p('weights', f);
    expect(s.writes.join('')).toBe(['0', '30', '60', '80', '100'].map((n) => `loading: weights ${n}%\n`).join(''));
  });

  test('on a terminal: one line rewritten at every new percent, a newline at the end', () => {
    const s = sink(true);
    const p = stderrProgress('loading: ', s.out);
    for (const f of feed) p('weights', f);
    expect(s.writes.map((w) => w.replace('\r\x1b[K', ''))).toEqual(
      ['0', '10', '30', '31', '60', '80', '99'].map((n) => `loading: weights ${n}%`).concat('loading: weights 100%\n'),
    );
  });

  test('kvserve generate shows intermediate weights percentages', async () => {
    const { stderr } = await promisify(execFile)(
      join(repoRoot, 'node_modules', '.bin', 'tsx'),
      [join(repoRoot, 'src', 'cli.ts'), 'generate', '--prompt', 'Once', '--max-tokens', '1', '--device', 'cpu'],
      { cwd: repoRoot, timeout: 60_000 },
    );
    const percents = [...stderr.matchAll(/loading: weights (\d+)%/g)].map((m) => Number(m[1]));
    expect(percents[0]).toBe(0);
    expect(percents.at(-1)).toBe(100);
    expect(percents.filter((p) => p > 0 && p < 100).length).toBeGreaterThanOrEqual(3);
  });
});

describe('progress as log records (kvserve serve)', () => {
  test("each stage's start, each tenth crossed with the percent reached, its end", () => {
    const records: Array<[object, string]> = [];
    const p = logProgress({ info: (fields: object, msg: string) => records.push([fields, msg]) });
    for (const f of [0, 0.05, 0.12, 0.19, 0.35, 0.999, 1]) p('weights', f);
    p('backend', 0);
    p('backend', 1);
    expect(records).toEqual(
      [
        ['weights', 0],
        ['weights', 12],
        ['weights', 35],
        ['weights', 99],
        ['weights', 100],
        ['backend', 0],
        ['backend', 100],
      ].map(([stage, percent]) => [{ stage, percent }, 'loading']),
    );
  });

  test('a real load of stories260K: at most 11 records a stage, however many tensors', async () => {
    const events = await loadEvents({});
    const records: Array<{ stage: string; percent: number }> = [];
    const p = logProgress({ info: (fields: { stage: string; percent: number }) => records.push(fields) });
    for (const [stage, f] of events) p(stage, f);
    const weights = records.filter((r) => r.stage === 'weights').map((r) => r.percent);
    expect(events.filter(([s]) => s === 'weights').length).toBeGreaterThan(40);
    expect(weights.length).toBeLessThanOrEqual(11);
    expect(weights[0]).toBe(0);
    expect(weights.at(-1)).toBe(100);
  });
});
