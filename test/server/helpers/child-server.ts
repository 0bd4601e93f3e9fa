// `kvserve serve` as a real child process (node running src/cli.ts through tsx's loader, so it is always
// the current source), on a free port of 127.0.0.1, for what needs signals, exit codes or a clean RSS.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../../src/config.js';

const children: ChildProcess[] = [];

/** Kills every child still running (for afterAll). */
export function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export interface ChildServer {
  child: ChildProcess;
  /** The URL it listens on, once it says so. */
  url: Promise<string>;
  /** The exit code (or the signal's name when killed by one). */
  exited: Promise<number | string>;
  stderr(): string;
}

export function spawnServe(args: string[]): ChildServer {
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
      ...args,
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, KVSERVE_API_KEY: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  children.push(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const url = new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: string) => {
      stderr += d;
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  url.catch(() => undefined);
  return { child, url, exited, stderr: () => stderr };
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
