// The answers fastify and Node's HTTP parser would otherwise write in their own shapes, in OpenAI's error
// envelope: what the parser refuses (408, 414, 431, 400, written raw on the socket since no request
// exists yet), URLs the router cannot decode, unknown routes (404) and known routes asked with another
// method (405 with Allow).
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, toApiError } from './errors.js';
import { freshRequestId } from './request-id.js';

/** Longer request lines are a 414 from the app; beyond Node's header limit (16 KiB) the parser refuses them. */
export const MAX_URL_LENGTH = 8 * 1024;

interface ParserError extends Error {
  code?: string;
  rawPacket?: Buffer;
  bytesParsed?: number;
}

/** The envelope for what Node's parser refused. A header overflow in the request line is a 414. */
function parserRefusal(err: ParserError, timeouts: string): ApiError {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new ApiError(
      'request_timeout',
      `the request did not arrive in time (${timeouts}); the connection is closed`,
    );
  }
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    // The chunk that began the request line ended without finishing it: the URL alone overflowed.
    const seen = err.rawPacket?.subarray(0, err.bytesParsed ?? err.rawPacket.length).toString('latin1') ?? '';
    if (/^[A-Z]+ /.test(seen) && !seen.includes('\r\n'))
      return new ApiError(
        'uri_too_long',
        `the request URL is longer than the server accepts (${MAX_URL_LENGTH} bytes)`,
      );
    return new ApiError('headers_too_large', 'the request headers are larger than the server accepts (16 KiB)');
  }
  return new ApiError('malformed_request', 'the request is not valid HTTP/1.1; the connection is closed');
}

/** Writes one raw HTTP response and closes: there is no request object to reply through. */
function writeRaw(socket: Socket, api: ApiError): void {
  const body = JSON.stringify(api.body());
  socket.write(
    `HTTP/1.1 ${api.status} ${STATUS_CODES[api.status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\nX-Request-Id: ${freshRequestId()}\r\n\r\n${body}`,
  );
}

/** fastify's `clientErrorHandler`: Node's 'clientError' event (timeouts, oversized or malformed requests). */
export function clientErrorHandler(timeouts: string) {
  return function (this: FastifyInstance, error: Error, socket: Socket): void {
    const err = error as ParserError;
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    // A response already begun on this socket (a pipelined request after it was malformed) cannot get another.
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) writeRaw(socket, parserRefusal(err, timeouts));
    this.log.debug({ err }, 'client error');
    socket.destroy();
  };
}

/** fastify's `frameworkErrors`: a URL the router cannot decode, a path parameter too long. No hooks ran. */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const api = toApiError(err, req.id);
  reply.raw.setHeader('x-request-id', req.id);
  void reply.code(api.status).send(api.body());
}

/** Records every route's methods, to tell a wrong method (405) from an unknown path (404). */
export function routeTable(app: FastifyInstance): (path: string) => string[] {
  const routes: Array<{ pattern: RegExp; methods: string[] }> = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const pattern = new RegExp(`^${route.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[^/]+/g, '[^/]+')}/?$`);
    const same = routes.find((r) => r.pattern.source === pattern.source);
    if (same) same.methods.push(...methods);
    else routes.push({ pattern, methods: [...methods] });
  });
  return (path) => {
    const hit = routes.find((r) => r.pattern.test(path));
    return hit ? [...new Set(hit.methods)] : [];
  };
}

/** The 404/405 handler: OpenAI's envelope; a known path asked with another method lists the right ones. */
export function notFoundHandler(allowedFor: (path: string) => string[]) {
  return (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?', 1)[0]!;
    const allowed = allowedFor(path);
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '));
      const api = new ApiError(
        'method_not_allowed',
        `${req.method} is not allowed on ${path}; use ${allowed.join(' or ')}`,
      );
      return reply.code(api.status).send(api.body());
    }
    const api = new ApiError('not_found', `no route for ${req.method} ${path}`);
    return reply.code(api.status).send(api.body());
  };
}

/** Raw request checks that need no route: the URL's length, and a body sent without a content type. */
export function checkRawRequest(raw: IncomingMessage): void {
  if ((raw.url?.length ?? 0) > MAX_URL_LENGTH) {
    throw new ApiError('uri_too_long', `the request URL is longer than the server accepts (${MAX_URL_LENGTH} bytes)`);
  }
  const hasBody = Number(raw.headers['content-length'] ?? 0) > 0 || raw.headers['transfer-encoding'] !== undefined;
  if (hasBody && raw.headers['content-type'] === undefined) {
    throw new ApiError(
      'unsupported_media_type',
      'send the request body as application/json (the Content-Type header is missing)',
    );
  }
}
