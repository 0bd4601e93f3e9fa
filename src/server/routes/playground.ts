// GET / — the chat playground — and its script and style sheet: three static files kept in
// src/server/playground/ (copied to dist/server/playground/ by `npm run build:ts`, so either tree finds
// them beside its routes/ folder), read once at start-up. The page talks to this server's own /v1 API; it loads nothing from elsewhere,
// which its Content-Security-Policy enforces. Public like /health: the page itself asks for the API key.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the API key (auth.ts). */
    public?: boolean;
  }
}

export const playgroundDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'playground');

const FILES: Array<[path: string, file: string, type: string]> = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/playground/app.js', 'app.js', 'text/javascript; charset=utf-8'],
  ['/playground/style.css', 'style.css', 'text/css; charset=utf-8'],
];

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const playgroundRoute: FastifyPluginAsync = async (app) => {
  for (const [path, file, type] of FILES) {
    const body = await readFile(join(playgroundDir, file));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    app.get(path, { config: { public: true } }, async (req, reply) => {
      reply
        .header('content-type', type)
        .header('cache-control', 'no-cache')
        .header('etag', etag)
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', CSP);
      if (req.headers['if-none-match'] === etag) return reply.code(304).send();
      return reply.send(body);
    });
  }
};
