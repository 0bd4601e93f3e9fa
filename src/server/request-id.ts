// Request ids: the client's X-Request-Id when it is a sane token, else a fresh one. It is fastify's request
// id (so every log line of the request carries it as reqId) and comes back on every answer, streams and
// errors included, so a client's failed request can be found in the log.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** What is echoed: printable, header- and log-safe, bounded. Anything else is replaced, never echoed. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const freshRequestId = () => `req-${randomUUID().replaceAll('-', '')}`;

/** fastify's `genReqId`. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && SANE_ID.test(given) ? given : freshRequestId();
}
