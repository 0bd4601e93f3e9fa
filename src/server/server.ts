// Listening and closing. The server listens before the model loads (so /health answers 503 during
// loading) and closes by draining (drain.ts): it keeps listening and answering — /health and new requests
// with 503 — while in-flight requests finish for a grace period, then cuts what is left with an error.
import { constants } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { ConfigError } from '../config.js';
import type { ServerContext } from './context.js';

export interface Listening {
  url: string;
  port: number;
}

/** Listens; a port that is taken (or an address that is not this machine's) is one line naming the flag. */
export async function listen(app: FastifyInstance, host: string, port: number): Promise<Listening> {
  try {
    await app.listen({ host, port, listenTextResolver: (address) => `listening on ${address}` });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ConfigError(`port ${port} on ${host} is in use: pick another with --port`);
    if (code === 'EACCES')
      throw new ConfigError(`port ${port} on ${host} needs privileges: pick one above 1023 with --port`);
    if (code === 'EADDRNOTAVAIL')
      throw new ConfigError(`${host} is not an address of this machine: pick another with --host`);
    throw e;
  }
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return { url: `http://${shownHost}:${actualPort}`, port: actualPort };
}

/**
 * Drains for up to `graceMs` (until nothing is in flight), then cuts the generations still running (their
 * clients get an error: an SSE error event then [DONE], or a 503), waits for those answers to be written,
 * closes the engine, and only then stops listening. Connections left after that carry no request
 * (keep-alives, or sockets a client opened and never used) and are closed at once.
 */
export async function closeGracefully(
  app: FastifyInstance,
  ctx: ServerContext,
  closeEngine: () => Promise<void>,
  graceMs = 10_000,
): Promise<void> {
  ctx.drain.start(graceMs);
  await until(() => ctx.inflight === 0, graceMs);
  ctx.drain.cutAll();
  await until(() => ctx.inflight === 0, 5_000);
  await closeEngine();
  const closing = app.close();
  app.server.closeAllConnections();
  await closing;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

/**
 * Resolves on the first SIGINT or SIGTERM; a second one exits at once (the user insists), with the status
 * a shell reports for death by that signal: 128 + its number (130 for SIGINT, 143 for SIGTERM).
 */
export function onShutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let seen = false;
    const handler = (signal: NodeJS.Signals) => {
      if (seen) process.exit(128 + constants.signals[signal]);
      seen = true;
      resolve(signal);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}
