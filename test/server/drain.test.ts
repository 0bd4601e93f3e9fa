// SIGTERM drains a real `kvserve serve` process: it keeps listening, /health turns 503 (so a load balancer
// stops sending), new requests get 503 with Retry-After, in-flight requests finish; whatever is still running
// when --drain-timeout ends gets an error (an SSE error event then [DONE], or a 503), never a 200 with
// finish_reason "abort". A second SIGTERM exits at once with 143, a second SIGINT with 130.
import { afterAll, describe, expect, it } from 'vitest';
import { metricValue, until } from './helpers/disconnect.js';
import { spawnServe, killChildren, untilHealthy, type ChildServer } from './helpers/child-server.js';
import { expectEnvelope } from './helpers/envelope.js';
import { parseResponse, rawConnect, rawRoundTrip } from './helpers/raw-http.js';
import { expected } from './helpers/stories.js';

afterAll(killChildren);

interface Answer {
  status: number;
  stream: boolean;
  headers: Headers;
  body: string;
}

async function complete(url: string, i: number, stream: boolean, maxTokens: number): Promise<Answer> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      prompt: expected[i]!.prompt,
      max_tokens: maxTokens,
      temperature: 0,
      ignore_eos: true,
      stream,
    }),
  });
  return { status: res.status, stream, headers: res.headers, body: await res.text() };
}

/** The fields of a completion chunk (or an in-stream error) these tests read. */
interface StreamEvent {
  choices?: Array<{ text?: string; finish_reason?: string | null }>;
  error?: { code: string };
}

/** The events of an SSE body, [DONE] last (asserted). */
function events(body: string): StreamEvent[] {
  expect(body.endsWith('data: [DONE]\n\n')).toBe(true);
  return body
    .split('\n\n')
    .filter((e) => e.startsWith('data: {'))
    .map((e) => JSON.parse(e.slice(6)));
}

const streamedText = (body: string) =>
  events(body)
    .map((c) => c.choices?.[0]?.text ?? '')
    .join('');

/** Requests the engine has taken: waiting, running, or finished (one choice each). */
async function admitted(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const finished = text
    .split('\n')
    .filter((l) => l.startsWith('vllm:request_success_total{'))
    .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
  return (
    finished +
    (await metricValue(url, 'vllm:num_requests_waiting')) +
    (await metricValue(url, 'vllm:num_requests_running'))
  );
}

/** Resolves once all `n` requests are in the engine and some are still waiting: then SIGTERM finds them in flight. */
async function allAdmitted(url: string, s: ChildServer, n: number): Promise<void> {
  await until(async () => (await admitted(url)) >= n, 30_000);
  expect(await metricValue(url, 'vllm:num_requests_waiting')).toBeGreaterThan(0);
  expect(s.child.exitCode).toBeNull();
}

describe('SIGTERM', () => {
  it('keeps listening while in-flight requests finish: /health 503, new requests 503 with Retry-After, exit 0', async () => {
    const s = spawnServe(['--max-num-seqs', '1', '--drain-timeout', '60']);
    const url = await s.url;
    await untilHealthy(url);
    // An upload in progress holds the drain open for as long as this test needs; it completes below.
    const late = JSON.stringify({ prompt: expected[0]!.prompt, max_tokens: 80, temperature: 0, ignore_eos: true });
    const upload = await rawConnect(
      url,
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${late.length}\r\nConnection: close\r\n\r\n${late.slice(0, 10)}`,
    );
    const jobs = Array.from({ length: 24 }, (_, k) => complete(url, k % 4, k % 2 === 0, 80));
    await allAdmitted(url, s, 24);
    s.child.kill('SIGTERM');
    await until(() => s.records().some((r) => r.signal === 'SIGTERM'), 10_000);

    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(503);
    expect(health.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await health.json()).toMatchObject({ status: 'draining' });
    // A new connection is accepted and told to go elsewhere.
    const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: 2 });
    const fresh = await rawRoundTrip(
      url,
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    expectEnvelope(fresh.status, fresh.body, 'server_shutting_down');
    expect(fresh.headers['retry-after']).toMatch(/^\d+$/);
    expect(fresh.headers.connection).toBe('close');

    // The request that was in flight before the signal is served in full.
    upload.write(late.slice(10));
    await upload.closed;
    const served = parseResponse(upload.received());
    expect(served.status).toBe(200);
    expect(JSON.parse(served.body).choices[0].text.replace(/^ /, '')).toBe(expected[0]!.greedy_text);
    const answers = await Promise.all(jobs);
    answers.forEach((a, k) => {
      expect(a.status).toBe(200);
      const text = a.stream ? streamedText(a.body) : JSON.parse(a.body).choices[0].text;
      expect(text.replace(/^ /, '')).toBe(expected[k % 4]!.greedy_text);
    });
    expect(await s.exited).toBe(0);
  });

  it('what the drain timeout cuts gets an error, streamed or not, never finish_reason "abort"', async () => {
    const s = spawnServe(['--max-num-seqs', '1', '--drain-timeout', '0.3']);
    const url = await s.url;
    await untilHealthy(url);
    const jobs = Array.from({ length: 40 }, (_, k) => complete(url, k % 4, k % 2 === 0, 490));
    await allAdmitted(url, s, 40);
    s.child.kill('SIGTERM');
    const answers = await Promise.all(jobs);
    let cutStreams = 0;
    let cutPlain = 0;
    for (const a of answers) {
      expect(a.body).not.toContain('"abort"');
      if (a.stream) {
        expect(a.status).toBe(200);
        const evs = events(a.body);
        const last = evs.at(-1)!;
        if (last.error) {
          expect(last.error.code).toBe('server_shutting_down');
          cutStreams++;
        } else {
          expect(last.choices?.[0]?.finish_reason).toBe('length');
        }
      } else if (a.status !== 200) {
        expectEnvelope(a.status, a.body, 'server_shutting_down');
        cutPlain++;
      } else {
        expect(JSON.parse(a.body).choices[0].finish_reason).toBe('length');
      }
    }
    expect(cutStreams).toBeGreaterThan(0);
    expect(cutPlain).toBeGreaterThan(0);
    expect(await s.exited).toBe(0);
  });

  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`a second ${signal} while draining exits at once with ${code}`, async () => {
      const s = spawnServe(['--drain-timeout', '60']);
      const url = await s.url;
      await untilHealthy(url);
      // A request whose body never completes keeps the drain waiting.
      const stalled = await rawConnect(
        url,
        'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt"',
      );
      await new Promise((r) => setTimeout(r, 100));
      s.child.kill(signal);
      await until(() => s.records().some((r) => r.signal === signal), 10_000);
      await new Promise((r) => setTimeout(r, 200));
      expect(s.child.exitCode).toBeNull();
      s.child.kill(signal);
      expect(await s.exited).toBe(code);
      stalled.destroy();
    });
  }
});
