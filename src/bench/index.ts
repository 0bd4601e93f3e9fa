// `kvserve bench`: the benchmark client. Parses flags, then one of three things:
//   compare two result files | sweep several request rates | one run (the default).
// Exit codes: 0 ok, 1 the run could not be made (server unreachable, warm-up failed, bad file), 2 bad flags.
// A run in which some requests fail still exits 0: failures are results, listed with their messages.
import { ConfigError } from '../config.js';
import { abBench, formatAbTable, renderAbHtml } from './ab-bench.js';
import { warmUp } from './benchmark.js';
import { formatCompareTable, loadResultFile, renderCompareHtml, runName } from './compare.js';
import { renderRunHtml } from './html-report.js';
import { benchHelp, parseBenchArgs, type BenchOptions } from './options.js';
import { htmlPath, measureRun, prepareBench, writeText } from './run.js';
import { formatPrefillTable, prefillCurve, renderPrefillHtml } from './prefill-curve.js';
import { formatSweepTable, renderSweepHtml } from './sweep.js';
import { endpointUrl } from './stream-request.js';
import { formatResultTable } from './table.js';

export type { BenchOptions } from './options.js';
export type { BenchResultJson } from './result-json.js';

/** Where the command writes; tests pass their own to capture output. */
export interface BenchIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIo: BenchIo = {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
};

export async function runBenchCli(argv: string[], io: BenchIo = processIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(benchHelp);
    return 0;
  }
  let o: BenchOptions;
  try {
    o = parseBenchArgs(argv);
  } catch (e) {
    if (e instanceof ConfigError) {
      io.err(`kvserve bench: ${e.message}`);
      return 2;
    }
    throw e;
  }
  try {
    if (o.compare) return await compare(o, io);
    if (o.baseUrls.length === 2) return await ab(o, io);
    if (o.inputLens) return await prefill(o, io);
    return await bench(o, io);
  } catch (e) {
    io.err(`kvserve bench: ${(e as Error).message}`);
    return 1;
  }
}

const WARMUP_SEED_OFFSET = 1_000_003;

async function bench(o: BenchOptions, io: BenchIo): Promise<number> {
  const setup = await prepareBench(o);
  io.err(
    `kvserve bench: ${setup.dataset.requests.length} prompts (${setup.datasetLabel}) → ${endpointUrl(o.baseUrl, o.endpoint)}, model ${setup.endpoint.model}`,
  );
  if (o.warmup > 0) {
    // Warm-up prompts are drawn apart from the measured ones: a repeated prompt would be a prefix-cache hit.
    io.err(`kvserve bench: warming up with ${o.warmup} request(s)`);
    const warm = await prepareBench({
      ...o,
      model: setup.endpoint.model,
      seed: o.seed + WARMUP_SEED_OFFSET,
      numPrompts: o.warmup,
    });
    await warmUp(setup.endpoint, warm.dataset.requests, o.warmup, o.maxConcurrency);
  }
  const html = htmlPath(o);
  if (!o.sweepRates) {
    const run = await measureRun(o, setup, o.requestRate);
    io.out(formatResultTable(run.info, run.metrics, run.json.errors));
    if (o.resultFile) await writeText(o.resultFile, `${JSON.stringify(run.json, null, 2)}\n`);
    if (html) await writeText(html, renderRunHtml(run.json));
    reportFiles(io, o.resultFile, html);
    return 0;
  }
  const runs = [];
  for (const [i, rate] of o.sweepRates.entries()) {
    // Each rate sends prompts of its own (seed + i), so a later rate is not served from the prefix cache
    // that an earlier one filled. (A ShareGPT file has one set of prompts: the order changes, not the set.)
    const rateSetup = i === 0 ? setup : await prepareBench({ ...o, model: setup.endpoint.model, seed: o.seed + i });
    const run = await measureRun(o, rateSetup, rate);
    io.out(formatResultTable(run.info, run.metrics, run.json.errors));
    runs.push(run.json);
  }
  io.out(formatSweepTable(runs));
  if (o.resultFile) await writeText(o.resultFile, `${JSON.stringify({ sweep: runs }, null, 2)}\n`);
  if (html) await writeText(html, renderSweepHtml(runs));
  reportFiles(io, o.resultFile, html);
  return 0;
}

async function ab(o: BenchOptions, io: BenchIo): Promise<number> {
  const r = await abBench(o, io.err);
  io.out(formatAbTable(r));
  return writeReports(o, io, r, renderAbHtml(r));
}

async function prefill(o: BenchOptions, io: BenchIo): Promise<number> {
  const r = await prefillCurve(o, io.err);
  io.out(formatPrefillTable(r));
  return writeReports(o, io, r, renderPrefillHtml(r));
}

async function writeReports(o: BenchOptions, io: BenchIo, json: unknown, html: string): Promise<number> {
  const htmlFile = htmlPath(o);
  if (o.resultFile) await writeText(o.resultFile, `${JSON.stringify(json, null, 2)}\n`);
  if (htmlFile) await writeText(htmlFile, html);
  reportFiles(io, o.resultFile, htmlFile);
  return 0;
}

async function compare(o: BenchOptions, io: BenchIo): Promise<number> {
  const [pathA, pathB] = o.compare!;
  const [a, b] = await Promise.all([loadResultFile(pathA), loadResultFile(pathB)]);
  const [nameA, nameB] = [runName(pathA), runName(pathB)];
  io.out(formatCompareTable(nameA, a, nameB, b));
  const html = htmlPath(o);
  if (html) {
    await writeText(html, renderCompareHtml(nameA, a, nameB, b));
    reportFiles(io, undefined, html);
  }
  return 0;
}

function reportFiles(io: BenchIo, json: string | undefined, html: string | undefined): void {
  if (json) io.err(`kvserve bench: wrote ${json}`);
  if (html) io.err(`kvserve bench: wrote ${html}`);
}
