// `kvserve serve` on a port something else holds: one fatal record in its log that names --port, exit code 1,
// no stack trace, nothing on stderr.
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { repoRoot } from '../../src/config.js';

const run = promisify(execFile);

test('a port in use is one fatal record naming --port', async () => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const port = (holder.address() as AddressInfo).port;
  try {
    const err = await run(
      join(repoRoot, 'node_modules', '.bin', 'tsx'),
      [join(repoRoot, 'src', 'cli.ts'), 'serve', '--port', String(port), '--device', 'cpu', '--log-format', 'json'],
      {
        cwd: repoRoot,
        timeout: 60_000,
        env: { ...process.env, KVSERVE_API_KEY: '' },
      },
    ).then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err, 'the server started on a port in use').toBeDefined();
    expect(err!.code).toBe(1);
    const records = err!.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: number; msg: string; err?: unknown });
    // Nothing before it: the port is taken before the model loads.
    expect(records).toEqual([
      expect.objectContaining({ level: 60, msg: `port ${port} on 127.0.0.1 is in use: pick another with --port` }),
    ]);
    expect(records[0]!.err).toBeUndefined(); // no stack
    expect(err!.stderr).toBe('');
  } finally {
    holder.close();
  }
});
