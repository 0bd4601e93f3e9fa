// `kvserve serve` logs in one format: every line it writes on stdout is a pino record (level, time, msg) —
// start-up, loading progress, listening, ready, requests, drain — and it writes nothing on stderr. With
// --log-format pretty the same records are one readable line each. A failed start-up is one fatal record.
import { afterAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createServerLogger, logProcessWarnings, resolveLogFormat } from '../../src/server/server-log.js';
import { killChildren, type LogRecord, spawnServe, untilHealthy } from './helpers/child-server.js';
import { expected } from './helpers/stories.js';

afterAll(killChildren);

async function complete(url: string, maxTokens: number) {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: expected[0]!.prompt, max_tokens: maxTokens, temperature: 0 }),
  });
  await res.text();
  return res.status;
}

/** The index of the first record `match` accepts; fails the test when there is none. */
function indexOf(records: LogRecord[], what: string, match: (r: LogRecord) => boolean): number {
  const i = records.findIndex(match);
  expect(i, `no record for ${what}`).toBeGreaterThanOrEqual(0);
  return i;
}

describe('kvserve serve --log-format json', () => {
  it('every stdout line is a record with level, time and msg; stderr stays empty', async () => {
    const s = spawnServe([]);
    const url = await s.url;
    await untilHealthy(url);
    expect(await complete(url, 5)).toBe(200);
    expect(await complete(url, -1)).toBe(400);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);

    expect(s.stderr()).toBe('');
    expect(s.stdout().endsWith('\n')).toBe(true);
    const records = s.records(); // throws on a line that is not JSON
    for (const r of records) {
      expect(Number.isInteger(r.level), JSON.stringify(r)).toBe(true);
      expect(typeof r.time, JSON.stringify(r)).toBe('number');
      expect(typeof r.msg, JSON.stringify(r)).toBe('string');
    }

    // What the server says, in order.
    const listening = indexOf(records, 'listening', (r) => /^listening on http:\/\/127\.0\.0\.1:\d+$/.test(r.msg));
    const ready = indexOf(records, 'ready', (r) => r.msg === 'ready');
    expect(records[ready]).toMatchObject({
      level: 30,
      model: 'stories260K',
      device: 'cpu',
      kvCacheDtype: 'float32',
      maxModelLen: 512,
    });
    const completed = indexOf(records, 'the 400', (r) => (r.res as { statusCode?: number })?.statusCode === 400);
    const draining = indexOf(records, 'the drain', (r) => r.signal === 'SIGTERM');
    expect(records.at(-1)!.msg).toBe('stopped');
    expect(listening < ready && ready < completed && completed < draining).toBe(true);

    // Loading progress: each stage from 0 to 100, never backwards, at most 11 records however many tensors.
    const loading = records.filter((r) => r.msg === 'loading');
    expect([...new Set(loading.map((r) => r.stage))]).toEqual(['config', 'weights', 'backend']);
    for (const stage of ['config', 'weights', 'backend']) {
      const percents = loading.filter((r) => r.stage === stage).map((r) => r.percent as number);
      expect(percents[0], stage).toBe(0);
      expect(percents.at(-1), stage).toBe(100);
      expect(percents, stage).toEqual([...percents].sort((a, b) => a - b));
      expect(percents.length, stage).toBeLessThanOrEqual(11);
    }
    // stories260K has 47 tensors, one weights report each: the records thin them out to the tenths.
    expect(loading.filter((r) => r.stage === 'weights').length).toBeGreaterThan(5);
  });

  it('a start-up that fails is one fatal record and exit code 1, nothing on stderr', async () => {
    const s = spawnServe(['--model', '/nonexistent/model']);
    expect(await s.exited).toBe(1);
    expect(s.records()).toEqual([expect.objectContaining({ level: 60, msg: 'model not found: /nonexistent/model' })]);
    expect(s.stderr()).toBe('');
  });
});

describe('kvserve serve --log-format pretty', () => {
  // [HH:MM:SS.mmm] LEVEL: message, then the fields as compact JSON.
  const LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): \S.*$/;

  it('one readable line a record, none of them JSON', async () => {
    const s = spawnServe(['--log-format', 'pretty']);
    const url = await s.url;
    await untilHealthy(url);
    expect(await complete(url, -1)).toBe(400);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);

    expect(s.stderr()).toBe('');
    const lines = s.stdout().trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(LINE);
    expect(lines).toContainEqual(expect.stringMatching(/\] INFO: listening on http:\/\/127\.0\.0\.1:\d+$/));
    expect(lines).toContainEqual(expect.stringMatching(/\] INFO: loading \{"stage":"weights","percent":100\}$/));
    expect(lines).toContainEqual(expect.stringMatching(/\] INFO: request completed \{.*"statusCode":400/));
    expect(lines.at(-1)).toMatch(/\] INFO: stopped$/);
  });

  it('a fatal error is one line too', async () => {
    const s = spawnServe(['--log-format', 'pretty', '--chat-template', '/nonexistent/t.jinja']);
    expect(await s.exited).toBe(1);
    expect(s.stdout()).toMatch(/^\[[\d:.]+\] FATAL: --chat-template: .*no such file[^\n]*\n$/i);
    expect(s.stderr()).toBe('');
  });
});

describe('--log-format auto', () => {
  it('is pretty on a terminal and json anywhere else', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
  });
});

describe('the logger itself', () => {
  const sink = () => {
    let text = '';
    const stream = new Writable({
      write(chunk, _enc, done) {
        text += String(chunk);
        done();
      },
    });
    return { stream, text: () => text };
  };

  it("pretty puts an error and the fields on the record's one line", async () => {
    const out = sink();
    const log = createServerLogger({ level: 'info', format: 'pretty', destination: out.stream });
    log.error({ err: new TypeError('bad thing'), requestId: 'r1' }, 'engine fault');
    log.debug('not at info');
    await new Promise((r) => setImmediate(r));
    expect(out.text()).toMatch(/^\[[\d:.]+\] ERROR: engine fault \(TypeError: bad thing\) \{"requestId":"r1"\}\n$/);
  });

  it("Node's process warnings become warn records", async () => {
    const saved = process.listeners('warning');
    const out = sink();
    try {
      logProcessWarnings(createServerLogger({ level: 'info', format: 'json', destination: out.stream }));
      process.emitWarning('something is deprecated', { type: 'DeprecationWarning', code: 'DEP0999' });
      await new Promise((r) => setTimeout(r, 10)); // warnings are emitted on the next tick
    } finally {
      process.removeAllListeners('warning');
      for (const l of saved) process.on('warning', l);
    }
    const record = JSON.parse(out.text());
    expect(record).toMatchObject({
      level: 40,
      msg: 'something is deprecated',
      warning: 'DeprecationWarning',
      code: 'DEP0999',
    });
  });
});
