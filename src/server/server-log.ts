// The server's one log: pino records on stdout, fastify's request records and everything `kvserve serve` says
// once it is a server (start-up, loading progress, listening, ready, warnings, drain, errors) alike.
// `json` is pino's own line format (level as a number, time in ms since the epoch, msg, then the fields),
// for log collectors; `pretty` is one readable line a record (pino-pretty), for a person at a terminal.
import pino, { type Logger } from 'pino';
import PinoPretty, { type PrettyOptions } from 'pino-pretty';
import type { ServerConfig } from '../config.js';

export interface ServerLogOptions {
  level: ServerConfig['logLevel'];
  format: ServerConfig['logFormat'];
  /** Default: stdout (fd 1, written synchronously, so nothing is lost when the process exits). */
  destination?: NodeJS.WritableStream;
  /** Whether stdout is a terminal, for `auto`; default process.stdout.isTTY. */
  isTTY?: boolean;
}

/** `auto` is pretty on a terminal and json anywhere else (a pipe, a file, a container's log). */
export function resolveLogFormat(format: ServerConfig['logFormat'], isTTY = process.stdout.isTTY === true) {
  return format === 'auto' ? (isTTY ? 'pretty' : 'json') : format;
}

/** Keys never reach the log, wherever a record would carry them (fastify's request records carry no headers
 *  today; a serializer or a debugging line that adds them must not leak the API or admin key). */
const REDACT = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'apiKey',
  'adminApiKey',
  '*.apiKey',
  '*.adminApiKey',
];

export function createServerLogger(o: ServerLogOptions): Logger {
  const options = { level: o.level, redact: { paths: REDACT, censor: '[redacted]' } };
  if (resolveLogFormat(o.format, o.isTTY) === 'json') {
    return pino(options, o.destination ?? pino.destination({ fd: 1, sync: true }));
  }
  // Colours only for a terminal (so a pretty log piped to a file or a test reads as plain text); NO_COLOR wins.
  const colorize = o.destination === undefined && process.stdout.isTTY === true && !process.env.NO_COLOR;
  return pino(options, PinoPretty({ ...prettyOptions, colorize, destination: o.destination ?? 1, sync: true }));
}

const prettyOptions: PrettyOptions = {
  translateTime: 'SYS:HH:MM:ss.l',
  ignore: 'pid,hostname',
  // pino-pretty puts nested objects and error stacks on lines of their own; one line a record instead:
  // the message, the error's type and message, then the other fields as compact JSON.
  hideObject: true,
  messageFormat: (record, messageKey) => {
    const { [messageKey]: msg, level, time, pid, hostname, err, ...fields } = record as Record<string, unknown>;
    const parts = [typeof msg === 'string' ? msg : ''];
    if (err && typeof err === 'object') {
      const e = err as { type?: string; message?: string };
      parts.push(`(${e.type ?? 'Error'}: ${e.message ?? ''})`);
    }
    if (Object.keys(fields).length > 0) parts.push(JSON.stringify(fields));
    return parts.join(' ');
  },
};

/**
 * Node's process warnings (deprecations, listener leaks) become warn records instead of plain lines on
 * stderr. For the `kvserve serve` process only: it replaces Node's own printer, which an embedder may want.
 */
export function logProcessWarnings(log: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    const code = (w as NodeJS.ErrnoException).code;
    log.warn({ warning: w.name, ...(code ? { code } : {}) }, w.message);
  });
}
