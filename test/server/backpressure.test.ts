// Back-pressure of streamed responses: while the client's socket is full, the server stops pulling the
// engine's outputs (they merge in the engine's output stream, bounded by the tokens) instead of buffering
// ever more SSE text in memory. Driven with a fake socket whose write() reports "full" until 'drain'; the same
// socket shows when the stream's head goes out (after the turn that opened it, with what that turn wrote).
import { EventEmitter } from 'node:events';
import type { FastifyReply } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EngineClient, EngineStats, RequestOutput } from '../../src/engine/types.js';
import { ServerMetrics } from '../../src/metrics/metrics.js';
import { Generation } from '../../src/server/generation.js';
import { SseWriter } from '../../src/server/sse.js';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { expected, storiesDir } from './helpers/stories.js';

class FullSocket extends EventEmitter {
  destroyed = false;
  writableEnded = false;
  full = true;
  writes: string[] = [];
  writeHead(): void {
    this.writes.push('<head>');
  }
  flushHeaders(): void {
    this.writes.push('<flush>');
  }
  cork(): void {}
  uncork(): void {}
  write(s: string): boolean {
    this.writes.push(s);
    return !this.full;
  }
  end(last: string): void {
    this.writes.push(last);
    this.writableEnded = true;
  }
  drain(): void {
    this.full = false;
    this.emit('drain');
  }
}

const fakeReply = (raw: FullSocket) => ({ hijack() {}, raw }) as unknown as FastifyReply;
const tick = () => new Promise((r) => setTimeout(r, 5));

/** An engine that yields one token per pull and counts how many outputs were taken. */
function countingEngine(ids: number[]): EngineClient & { pulled: number } {
  const engine = {
    pulled: 0,
    submit(): AsyncIterable<RequestOutput> {
      return (async function* () {
        for (let i = 0; i < ids.length; i++) {
          engine.pulled++;
          const last = i === ids.length - 1;
          yield {
            id: 'r-0',
            newTokenIds: [ids[i]!],
            finished: last,
            finishReason: last ? 'length' : undefined,
            numPromptTokens: 5,
            numCachedPromptTokens: 0,
            numOutputTokens: i + 1,
          } as RequestOutput;
        }
      })();
    },
    abort() {},
    stats: () => ({}) as EngineStats,
  };
  return engine;
}

let tokenizer: TextTokenizer;
beforeAll(async () => {
  tokenizer = await TextTokenizer.load(storiesDir);
});

describe('the head of a stream', () => {
  it('goes out after the turn that opened it (where the first step launches), with what was written in it', async () => {
    const raw = new FullSocket();
    const sse = new SseWriter(fakeReply(raw));
    sse.send({ role: 'assistant' });
    sse.send({ echo: 'x' });
    expect(raw.writes).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(raw.writes).toEqual(['<head>', 'data: {"role":"assistant"}\n\ndata: {"echo":"x"}\n\n']);
    sse.send({ text: 'a' });
    expect(raw.writes.at(-1)).toBe('data: {"text":"a"}\n\n');
  });

  it('alone is flushed at once; a stream ended before the turn is over writes its head, frames and end', async () => {
    const quiet = new FullSocket();
    new SseWriter(fakeReply(quiet));
    await new Promise((r) => setImmediate(r));
    expect(quiet.writes).toEqual(['<head>', '<flush>']);
    const quick = new FullSocket();
    const sse = new SseWriter(fakeReply(quick));
    sse.send({ error: 'e' });
    sse.done();
    expect(quick.writes).toEqual(['<head>', 'data: {"error":"e"}\n\n', 'data: [DONE]\n\n']);
    expect(quick.writableEnded).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(quick.writes).toHaveLength(3);
  });
});

describe('streaming back-pressure', () => {
  it('SseWriter.writable() waits for drain (or close) only after a write hit the high-water mark', async () => {
    const raw = new FullSocket();
    const sse = new SseWriter(fakeReply(raw));
    await sse.writable(); // nothing written yet: resolves at once
    sse.send({ a: 1 });
    let ready = false;
    void sse.writable().then(() => (ready = true));
    await tick();
    expect(ready).toBe(false);
    raw.drain();
    await tick();
    expect(ready).toBe(true);

    raw.full = true;
    sse.send({ a: 2 });
    let closed = false;
    void sse.writable().then(() => (closed = true));
    raw.destroyed = true;
    raw.emit('close');
    await tick();
    expect(closed).toBe(true);
  });

  it('a generation pulls no further engine output while the socket is full', async () => {
    const e = expected[0]!;
    const engine = countingEngine(e.greedy_ids.slice(0, 20));
    const metrics = new ServerMetrics('m', () => undefined);
    const gen = new Generation(
      { client: engine, tokenizer, metrics },
      'r',
      [
        {
          promptIds: e.prompt_ids,
          sampling: {
            temperature: 0,
            topP: 1,
            topK: 0,
            minP: 0,
            presencePenalty: 0,
            frequencyPenalty: 0,
            repetitionPenalty: 1,
            maxTokens: 20,
            minTokens: 0,
            stopTokenIds: [],
            ignoreEos: true,
            logprobs: null,
          },
        },
      ],
      { stops: [], includeStopStr: false, skipSpecialTokens: true },
      performance.now(),
    );
    const raw = new FullSocket();
    const sse = new SseWriter(fakeReply(raw));
    const done = gen.run({ delta: (_, d) => sse.send({ text: d.text }), writable: () => sse.writable() });
    await tick();
    const pulledWhileFull = engine.pulled;
    expect(pulledWhileFull).toBeLessThanOrEqual(2); // the first text went out, then it waits
    await tick();
    expect(engine.pulled).toBe(pulledWhileFull);
    raw.full = false; // from now on every write fits
    raw.emit('drain');
    const [result] = await done;
    expect(engine.pulled).toBe(20);
    expect(result!.text.trimStart()).toBe(tokenizer.decode(e.greedy_ids.slice(0, 20)));
  });
});
