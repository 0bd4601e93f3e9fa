// A raw TCP client for what fetch cannot send: stalled bodies, oversized headers, malformed request lines.
// It writes the given bytes, keeps the socket open, and records everything the server sends and when it
// closed the connection.
import { connect, type Socket } from 'node:net';

export interface RawExchange {
  /** Everything received so far. */
  readonly received: () => string;
  /** Resolves with the milliseconds from connect to the server closing the socket. */
  readonly closed: Promise<number>;
  write(data: string | Buffer): void;
  destroy(): void;
  socket: Socket;
}

export async function rawConnect(url: string, first?: string | Buffer): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const start = Date.now();
  let data = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (data += d));
  socket.on('error', () => undefined); // a reset after the server's answer is part of what is tested
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - start)));
  if (first !== undefined) socket.write(first);
  return { received: () => data, closed, write: (d) => socket.write(d), destroy: () => socket.destroy(), socket };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses the first HTTP/1.1 response in `raw` (Content-Length bodies only: what error answers use). */
export function parseResponse(raw: string): RawResponse {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response in ${JSON.stringify(raw.slice(0, 200))}`);
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine!)?.[1]);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  return { status, headers, body: raw.slice(end + 4, end + 4 + length) };
}

/** Sends `request` whole and returns the server's answer once it closes the connection (or after `waitMs`). */
export async function rawRoundTrip(
  url: string,
  request: string | Buffer,
  waitMs = 5000,
): Promise<RawResponse & { closedAfterMs: number | undefined }> {
  const x = await rawConnect(url, request);
  const closedAfterMs = await Promise.race([
    x.closed,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), waitMs)),
  ]);
  x.destroy();
  return { ...parseResponse(x.received()), closedAfterMs };
}
