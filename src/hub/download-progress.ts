// Download progress, in the style of src/load-progress.ts. On stderr (`generate`, `chat`): on a terminal one
// line rewritten in place (bytes so far of the total, the file being fetched); elsewhere (logs, CI) plain
// lines — each file as it starts and the total at every tenth — so a log shows a long download moving without
// being flooded. `serve` logs the same moments as records (`logDownloadProgress`).
import type { InfoLog } from '../load-progress.js';

export interface DownloadProgress {
  /** What is about to be fetched: `files` files not yet in the cache, `totalBytes` in all. */
  start(label: string, files: number, totalBytes: number): void;
  /** A file begins; `resumeAt` > 0 when an .incomplete part is continued. */
  file(path: string, size: number, resumeAt: number): void;
  /** Bytes of the total now on disk (a resumed part counts from the start). */
  bytes(done: number): void;
  finish(): void;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

interface Out {
  write(s: string): unknown;
  isTTY?: boolean;
}

export function stderrDownloadProgress(out: Out = process.stderr, now: () => number = Date.now): DownloadProgress {
  const tty = out.isTTY === true;
  let label = '';
  let total = 0;
  let current = '';
  let lastLine = '';
  let lastTenth = -1;
  let lastDraw = 0;
  let started = 0;
  const pct = (done: number) => (total > 0 ? Math.floor((done / total) * 100) : 100);
  const line = (done: number) => `downloading ${label}: ${formatBytes(done)} / ${formatBytes(total)} (${pct(done)}%)`;
  return {
    start(l, files, totalBytes) {
      label = l;
      total = totalBytes;
      started = now();
      if (!tty) out.write(`downloading ${label}: ${files} file${files === 1 ? '' : 's'}, ${formatBytes(total)}\n`);
    },
    file(path, size, resumeAt) {
      current = path;
      if (!tty)
        out.write(
          `downloading ${label}: ${path} (${formatBytes(size)}${resumeAt > 0 ? `, resuming at ${formatBytes(resumeAt)}` : ''})\n`,
        );
    },
    bytes(done) {
      if (tty) {
        const text = `${line(done)} ${current}`;
        // Redraw at most ten times a second, and never the same text twice.
        if (text === lastLine || (now() - lastDraw < 100 && done < total)) return;
        lastLine = text;
        lastDraw = now();
        out.write(`\r\x1b[K${text}`);
        return;
      }
      const tenth = total > 0 ? Math.floor((done / total) * 10) : 10;
      if (tenth > lastTenth && tenth < 10) {
        lastTenth = tenth;
        if (tenth > 0) out.write(`${line(done)}\n`);
      }
    },
    finish() {
      const secs = Math.max((now() - started) / 1000, 1e-3);
      const text = `downloaded ${label}: ${formatBytes(total)} (100%) in ${secs.toFixed(1)} s, ${formatBytes(Math.round(total / secs))}/s`;
      out.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`);
    },
  };
}

/**
 * Download progress as info records: the download's start (files, bytes), each file, each tenth of the bytes
 * crossed, and the end with the rate; `repo` on every one.
 */
export function logDownloadProgress(log: InfoLog, now: () => number = Date.now): DownloadProgress {
  let repo = '';
  let total = 0;
  let lastTenth = 0;
  let started = 0;
  return {
    start(label, files, totalBytes) {
      repo = label;
      total = totalBytes;
      started = now();
      log.info({ repo, files, totalBytes }, `downloading ${repo}`);
    },
    file(path, size, resumeAt) {
      log.info({ repo, file: path, bytes: size, ...(resumeAt > 0 ? { resumeAt } : {}) }, 'downloading file');
    },
    bytes(done) {
      const tenth = total > 0 ? Math.floor((done / total) * 10) : 10;
      if (tenth <= lastTenth || tenth >= 10) return;
      lastTenth = tenth;
      log.info({ repo, bytes: done, totalBytes: total, percent: Math.floor((done / total) * 100) }, 'downloading');
    },
    finish() {
      const seconds = Math.max((now() - started) / 1000, 1e-3);
      log.info(
        { repo, totalBytes: total, seconds: Number(seconds.toFixed(3)), bytesPerSecond: Math.round(total / seconds) },
        `downloaded ${repo}`,
      );
    },
  };
}

/** For --quiet and silent log levels. */
export const noDownloadProgress: DownloadProgress = { start() {}, file() {}, bytes() {}, finish() {} };
