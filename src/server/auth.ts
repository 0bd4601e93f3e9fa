// Bearer-key authentication for every route but /health, /metrics and those marked public (the playground
// page: probes, scrapers and browsers carry no key, as with vLLM; the admin API, which checks its own key:
// routes/admin.ts). Keys are compared in constant time over
// their SHA-256 digests, so neither the content nor the length of the configured key leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

const OPEN_PATHS = new Set(['/health', '/metrics', '/ping', '/version', '/livez']);

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function keyMatches(expected: string, given: string): boolean {
  return timingSafeEqual(digest(expected), digest(given));
}

function presentedKey(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (typeof header === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(header.trim());
    return m ? m[1]!.trim() : undefined;
  }
  const alt = req.headers['x-api-key'];
  return typeof alt === 'string' ? alt : undefined;
}

export function registerAuth(app: FastifyInstance, apiKey: string | undefined): void {
  if (!apiKey) return;
  // Not async, as app.ts's hook: a throw is the request's error.
  app.addHook('onRequest', (req, _reply, done) => {
    const path = req.url.split('?', 1)[0]!;
    // OPTIONS reads nothing: a CORS preflight (which browsers send without credentials) or a 405.
    if (OPEN_PATHS.has(path) || req.method === 'OPTIONS' || req.routeOptions.config.public) return done();
    const given = presentedKey(req);
    if (given === undefined) {
      throw new ApiError('invalid_api_key', 'missing API key: send it as "Authorization: Bearer <key>"');
    }
    if (!keyMatches(apiKey, given)) throw new ApiError('invalid_api_key', 'incorrect API key provided');
    done();
  });
}
