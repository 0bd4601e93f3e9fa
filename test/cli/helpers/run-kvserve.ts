// `kvserve ARGS` as a user runs it: a real process (node running src/cli.ts through tsx, so always the current
// source) in the repository root, with its exit code and output; a non-zero exit is a result, not a throw.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { repoRoot } from '../../../src/config.js';

const run = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function kvserve(args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: repoRoot,
      timeout: 60_000,
      env,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as CliResult;
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}
