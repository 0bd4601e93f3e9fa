// Listening and closing. The server listens before the model loads (so /health answers 503 during
// loading) and closes gracefully: stop accepting, let in-flight requests finish for a grace period,
// then abort what is left by closing the engine, whose live requests end with 'abort'.
import type { FastifyInstance } from 'fastify';
import { ConfigError } from '../config.js';

export interface Listening {
  url: string;
  port: number;
}

/** Listens; a port that is taken (or an address that is not this machine's) is one line naming the flag. */
export async function listen(app: FastifyInstance, host: string, port: number): Promise<Listening> {
  try {
    await app.listen({ host, port });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ConfigError(`port ${port} on ${host} is in use: pick another with --port`);
    if (code === 'EACCES') throw new ConfigError(`port ${port} on ${host} needs privileges: pick one above 1023 with --port`);
    if (code === 'EADDRNOTAVAIL') throw new ConfigError(`${host} is not an address of this machine: pick another with --host`);
    throw e;
  }
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return { url: `http://${shownHost}:${actualPort}`, port: actualPort };
}

/**
 * Stops accepting, lets in-flight requests finish for `graceMs`, then calls `abortAll` (closing the
 * engine, whose live requests end with 'abort' so their streams finish with [DONE]). Connections left
 * after that carry no request (keep-alives, or sockets a client opened and never used) and are closed
 * at once rather than waiting out the keep-alive and header timeouts.
 */
export async function closeGracefully(app: FastifyInstance, inflight: () => number, abortAll: () => Promise<void>, graceMs = 10_000): Promise<void> {
  const closing = app.close();
  await until(() => inflight() === 0, graceMs);
  const aborted = abortAll();
  await until(() => inflight() === 0, 5_000);
  app.server.closeAllConnections();
  await closing;
  await aborted;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once (the user insists). */
export function onShutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let seen = false;
    const handler = (signal: NodeJS.Signals) => {
      if (seen) process.exit(130);
      seen = true;
      resolve(signal);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}
