// Server-sent events exactly as OpenAI frames them: `data: {json}\n\n` per chunk, `data: [DONE]\n\n` last
// (completions); `event: type\ndata: {json}\n\n` per event and no [DONE] (responses).
// The reply is hijacked from fastify once the request is known to be good, so every chunk goes straight
// to the socket. Writes after the client left are dropped (the route aborts the engine work then).
import type { FastifyReply } from 'fastify';
import type { ApiError } from './errors.js';

export class SseWriter {
  private ended = false;
  private blocked = false; // the last write went over the socket's high-water mark
  /** What was written before the head went out (chat's role chunk, echoed prompts); undefined once it has. */
  private early: string[] | undefined = [];

  constructor(private readonly reply: FastifyReply) {
    reply.hijack();
    // The head, and what is written in this turn of the event loop, go out in one write once the turn's microtasks
    // are done: the engine loop launches the request's first step in them, and building the head and writing it
    // ahead of that would only delay the step.
    setImmediate(() => this.open());
  }

  /** Writes the head and what was written so far. */
  private open(): void {
    const early = this.early;
    if (!early) return;
    this.early = undefined;
    const raw = this.reply.raw;
    if (raw.destroyed) return;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx: do not buffer the stream
    });
    if (early.length === 0) raw.flushHeaders();
    else this.write(early.join(''));
  }

  /** True once the stream ended or the client went away. */
  get closed(): boolean {
    return this.ended || this.reply.raw.destroyed || this.reply.raw.writableEnded;
  }

  send(chunk: unknown): void {
    this.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }

  /** A named event (the Responses API's framing). */
  event(type: string, data: unknown): void {
    this.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private write(frame: string): void {
    if (this.early) this.early.push(frame);
    else if (!this.closed && !this.reply.raw.write(frame)) this.blocked = true;
  }

  /** Resolves at once unless a write went over the high-water mark; then once the socket drains or closes. Before
   *  the head went out, once it has (its write is queued ahead of this check) and that write's answer is known. */
  writable(): Promise<void> {
    if (this.early) return new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.writable());
    if (!this.blocked || this.closed) return Promise.resolve();
    const raw = this.reply.raw;
    return new Promise((resolve) => {
      const go = () => {
        raw.off('drain', go);
        raw.off('close', go);
        this.blocked = false;
        resolve();
      };
      raw.on('drain', go);
      raw.on('close', go);
    });
  }

  /** An error after the stream started: the status is already 200, so it travels as a data event. */
  error(err: ApiError): void {
    this.send(err.body());
  }

  done(): void {
    this.end('data: [DONE]\n\n');
  }

  /** Ends the stream after `last` (nothing by default: the Responses API sends no [DONE]). */
  end(last = ''): void {
    this.open();
    if (this.closed) return;
    this.reply.raw.end(last);
    this.ended = true;
  }
}
