// Model lifecycle costs on the real server (a script, not a test): stories260K on the CPU under steady load
// from --clients clients, each sending the next greedy completion as soon as one ends. It measures how long a
// second model takes to load beside it (admin POST → ready), how long a switch of the first to a copy takes
// (PUT → new engine serving, → old engine freed), an unload, and an engine fault to the restarted engine
// serving; and the request latency of the first model before, during and after the switch, with the count of
// failed requests (which must be 0). Times depend on the machine; the table names the phases.
//
//   npx tsx test/perf/model-switch.ts [--clients 4] [--rounds 3]
import { parseArgs } from 'node:util';
import { percentileSorted } from '../../src/bench/stats.js';

const percentile = (xs: number[], p: number) =>
  percentileSorted(
    [...xs].sort((a, b) => a - b),
    p,
  );
import {
  admin,
  qwenDir,
  serverConfig,
  startNamed,
  storiesCopy,
  until,
  untilModels,
  watchedNative,
} from '../server/helpers/models-server.js';
import { expected } from '../server/helpers/stories.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { clients: { type: 'string', default: '4' }, rounds: { type: 'string', default: '3' } },
  });
  const clients = Number(values.clients);
  const watched = watchedNative();
  const server = await startNamed('a', serverConfig({ threads: 1, restartBackoff: 0 }), watched.native);
  await server.ready;

  let phase = 'steady';
  const latencies = new Map<string, number[]>();
  const failed = new Map<string, number>();
  let stop = false;
  const loop = async (c: number) => {
    for (let k = 0; k < 100_000 && !stop; k++) {
      const e = expected[(c + k) % expected.length]!;
      const t0 = performance.now();
      const at = phase;
      const r = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'a', prompt: e.prompt, max_tokens: 80, temperature: 0, ignore_eos: true }),
      });
      const json = (await r.json()) as { choices?: Array<{ text: string }> };
      const ok = r.status === 200 && json.choices?.[0]?.text.replace(/^ /, '') === e.greedy_text;
      // A request counts for a phase when it began and ended in it.
      if (at === phase) {
        if (!ok) failed.set(at, (failed.get(at) ?? 0) + 1);
        const list = latencies.get(at) ?? [];
        list.push(performance.now() - t0);
        latencies.set(at, list);
      }
    }
  };
  const loops = Array.from({ length: clients }, (_, c) => loop(c));
  const settle = () => new Promise((r) => setTimeout(r, 1000));
  const rows: Array<[string, number]> = [];
  const timed = async (what: string, fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    rows.push([what, performance.now() - t0]);
  };

  await settle();
  for (let round = 0; round < Number(values.rounds); round++) {
    const copy = storiesCopy();
    phase = 'loading b';
    await timed('load a second model (POST → ready)', async () => {
      await admin(server.url, 'POST', '/admin/models', { name: 'b', model: qwenDir, device: 'cpu', threads: 1 });
      await untilModels(server.url, (m) => m.find((x) => x.name === 'b')?.state === 'ready');
    });
    phase = 'steady';
    await settle();
    phase = 'switch (PUT → old engine freed)';
    const old = watched.engines.find((e) => !e.disposed && e.opts.model !== qwenDir)!;
    const t0 = performance.now();
    await admin(server.url, 'PUT', '/admin/models/a', { model: copy, device: 'cpu', threads: 1 });
    await untilModels(server.url, (m) => m[0]!.source === copy);
    rows.push(['switch: PUT → new engine serves', performance.now() - t0]);
    await until(() => old.disposed, 'the old engine freed');
    rows.push(['switch: PUT → old engine freed', performance.now() - t0]);
    phase = 'after the switch';
    await settle();
    phase = 'unloading b';
    await timed('unload (DELETE → engine freed)', async () => {
      const b = watched.engines.find((e) => !e.disposed && e.opts.model === qwenDir)!;
      await admin(server.url, 'DELETE', '/admin/models/b');
      await until(() => b.disposed, 'b freed');
    });
    phase = 'engine fault';
    await timed('engine fault → restarted engine serves (backoff 0)', async () => {
      const current = watched.engines.find((e) => !e.disposed && e.opts.model === copy)!;
      watched.control.breakWhen = () => true;
      await until(
        async () => (await fetch(`${server.url}/health`)).status === 200 && watched.engines.at(-1) !== current,
        'restart',
      );
    });
    phase = 'steady';
    await settle();
  }
  stop = true;
  await Promise.all(loops);
  await server.close(1000);

  console.log(`\nstories260K on the CPU, ${clients} clients in a closed loop, ${values.rounds} rounds\n`);
  console.log('| operation | median ms | max ms |');
  console.log('|---|---|---|');
  for (const what of [...new Set(rows.map((r) => r[0]))]) {
    const ms = rows.filter((r) => r[0] === what).map((r) => r[1]);
    console.log(`| ${what} | ${percentile(ms, 50).toFixed(1)} | ${Math.max(...ms).toFixed(1)} |`);
  }
  console.log('\n| requests to a | done | failed | p50 ms | p99 ms |');
  console.log('|---|---|---|---|---|');
  for (const [at, ms] of latencies) {
    const f = failed.get(at) ?? 0;
    console.log(
      `| ${at} | ${ms.length} | ${f} | ${percentile(ms, 50).toFixed(1)} | ${percentile(ms, 99).toFixed(1)} |`,
    );
  }
  console.log('\n(failed: an error or a text other than the reference; only the engine fault may fail any)');
}

await main();
