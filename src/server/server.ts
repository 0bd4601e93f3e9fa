// Listening and closing. The server listens before the model loads (so /health answers 503 during
// loading) and closes gracefully: stop accepting, let in-flight requests finish for a grace period,
// then abort what is left by closing the engine, whose live requests end with 'abort'.
import type { FastifyInstance } from 'fastify';

export interface Listening {
  url: string;
  port: number;
}

export async function listen(app: FastifyInstance, host: string, port: number): Promise<Listening> {
  await app.listen({ host, port });
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return { url: `http://${shownHost}:${actualPort}`, port: actualPort };
}

/**
 * Closes the app; when requests are still streaming after `graceMs`, calls `abortAll` (closing the
 * engine) so they end and the close completes. Resolves once the app is closed and `abortAll` has run.
 */
export async function closeGracefully(app: FastifyInstance, abortAll: () => Promise<void>, graceMs = 10_000): Promise<void> {
  let aborted: Promise<void> | undefined;
  const timer = setTimeout(() => {
    aborted = abortAll();
  }, graceMs);
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
  }
  await (aborted ?? abortAll());
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
