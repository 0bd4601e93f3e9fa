// `kvserve serve` on a port something else holds: one line that names --port, exit code 1, no stack trace.
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { repoRoot } from '../../src/config.js';

const run = promisify(execFile);

test('a port in use is one line naming --port', async () => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const port = (holder.address() as AddressInfo).port;
  try {
    const err = await run(
      join(repoRoot, 'node_modules', '.bin', 'tsx'),
      [join(repoRoot, 'src', 'cli.ts'), 'serve', '--port', String(port), '--device', 'cpu'],
      {
        cwd: repoRoot,
        timeout: 60_000,
        env: { ...process.env, KVSERVE_API_KEY: '' },
      },
    ).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err, 'the server started on a port in use').toBeDefined();
    expect(err!.code).toBe(1);
    expect(err!.stderr.trim()).toBe(`kvserve: port ${port} on 127.0.0.1 is in use: pick another with --port`);
  } finally {
    holder.close();
  }
});
