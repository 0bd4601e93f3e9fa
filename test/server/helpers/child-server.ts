// `kvserve serve` as a real child process (node running src/cli.ts through tsx's loader, so it is always
// the current source), on a free port of 127.0.0.1, for what needs signals, exit codes, its log or a clean RSS.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';
import { repoRoot } from '../../../src/config.js';

const children: ChildProcess[] = [];

/** Kills every child still running (for afterAll). */
export function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** A pino record as `kvserve serve` writes it on stdout (json format). */
export interface LogRecord {
  level: number;
  time: number;
  msg: string;
  [field: string]: unknown;
}

export interface ChildServer {
  child: ChildProcess;
  /** The URL it listens on, once its log says so. */
  url: Promise<string>;
  /** The exit code (or the signal's name when killed by one). */
  exited: Promise<number | string>;
  stdout(): string;
  stderr(): string;
  /** stdout's complete lines, each parsed as JSON (a line that is not JSON throws here). */
  records(): LogRecord[];
}

/** `kvserve serve` with its json log (unless `args` choose another), in `env` (default: this process's, no API key). */
export function spawnServe(
  args: string[],
  env: NodeJS.ProcessEnv = { ...process.env, KVSERVE_API_KEY: '' },
): ChildServer {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'src', 'cli.ts'),
      'serve',
      '--port',
      '0',
      '--device',
      'cpu',
      '--threads',
      '1',
      '--log-format',
      'json',
      ...args,
    ],
    {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const records = () =>
    stdout
      .split('\n')
      .slice(0, -1) // the last piece is an unfinished line (or empty)
      .map((line) => JSON.parse(line) as LogRecord);
  const url = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: string) => {
      stdout += d;
      const m = /listening on (http:\/\/[^"\s]+)/.exec(stdout); // a json record's msg, or a pretty line
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}${stdout}`)));
  });
  url.catch(() => undefined); // tests that expect a failed start await `exited` instead
  return { child, url, exited, stdout: () => stdout, stderr: () => stderr, records };
}

/** Resolves once /health answers 200 (the model is loaded). */
export async function untilHealthy(url: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if ((await fetch(`${url}/health`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('never became healthy');
}

/** `kvserve serve ARGS` as a child process, once healthy: its 'ready' log record and its answer to one
 *  POST /v1/completions of `body` (which must be 200). The server is killed before this returns. */
export async function serveCompletion(
  args: string[],
  body: Record<string, unknown>,
): Promise<{ ready: LogRecord | undefined; answer: unknown }> {
  const server = spawnServe(args);
  try {
    const url = await server.url;
    // A server that exits (a refused load) fails here at once, with its output, instead of after the wait.
    let healthy = false;
    const exited = server.exited.then((code) => {
      if (!healthy)
        throw new Error(`exited ${code} before it was healthy: ${server.stderr()}${server.stdout().slice(-3000)}`);
    });
    await Promise.race([untilHealthy(url).then(() => (healthy = true)), exited]);
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    return { ready: server.records().find((r) => r.msg === 'ready'), answer: await res.json() };
  } finally {
    server.child.kill('SIGKILL');
  }
}
