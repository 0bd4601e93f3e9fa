// The playground at /: its files as served (types, CSP, public without the API key), and the page itself in
// headless Chromium — it loads, lists the model from /v1/models, sends a message and shows the streamed
// reply, which at temperature 0 must be the greedy reply (the same request not streamed, and transformers'
// text from expected.json). Chromium is Debian's package; .ci/run installs it, so in CI (CI=true) these
// tests always run, and elsewhere they are skipped only when /usr/bin/chromium is missing.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { finishEngineConfig, serverDefaults } from '../../src/config.js';
import { startServe, type ServeHandle } from '../../src/server/serve-cli.js';
import { expected } from './helpers/stories.js';

const CHROMIUM = '/usr/bin/chromium';
const inCi = process.env.CI === 'true' || process.env.CI === '1';
const skipBrowser = !existsSync(CHROMIUM) && !inCi;
if (skipBrowser)
  console.warn(`playground browser tests skipped: ${CHROMIUM} is missing (apt-get install chromium); CI runs them`);

const once = expected.find((e) => e.prompt === 'Once upon a time')!;
const MAX_TOKENS = 80; // expected.json's greedy length

async function serve(apiKey?: string): Promise<ServeHandle> {
  const s = await startServe(
    finishEngineConfig({ ...serverDefaults(), device: 'cpu', port: 0, threads: 1, logLevel: 'silent', apiKey }),
  );
  await s.ready;
  return s;
}

describe('the playground files', () => {
  let server: ServeHandle;
  beforeAll(async () => (server = await serve('sekret')));
  afterAll(() => server?.close());

  test.each([
    ['/', 'text/html', '<title>kvserve playground</title>'],
    ['/playground/app.js', 'text/javascript', "fetch('/v1/chat/completions'"],
    ['/playground/style.css', 'text/css', '.message'],
  ])('%s is served without the API key, as %s, loading nothing from elsewhere', async (path, type, snippet) => {
    const res = await fetch(`${server.url}${path}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain(type);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const body = await res.text();
    expect(body).toContain(snippet);
    expect(body).not.toMatch(/(src|href)="(https?:)?\/\//);
    const again = await fetch(`${server.url}${path}`, { headers: { 'if-none-match': res.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });

  test('the API itself still needs the key', async () => {
    expect((await fetch(`${server.url}/v1/models`)).status).toBe(401);
  });
});

describe.skipIf(skipBrowser)('the playground in headless Chromium', () => {
  let browser: BrowserContext;
  let profile: string;
  beforeAll(async () => {
    profile = mkdtempSync(join(tmpdir(), 'kvserve-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  /** Sets the sampling fields, sends `text` with Enter, and returns the finished reply's text. */
  async function sendGreedy(page: Page, text: string): Promise<string> {
    await page.fill('#temperature', '0');
    await page.fill('#max_tokens', String(MAX_TOKENS));
    await page.fill('#prompt', text);
    const request = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
    await page.press('#prompt', 'Enter');
    const body = (await request).postDataJSON() as { stream: boolean; temperature: number; max_tokens: number };
    expect(body).toMatchObject({ stream: true, temperature: 0, max_tokens: MAX_TOKENS });
    const response = await (await request).response();
    expect(response!.headers()['content-type']).toContain('text/event-stream');
    const done = page.locator('.message.assistant[data-state="done"] .content').last();
    await done.waitFor({ timeout: 30_000 });
    return (await done.textContent())!;
  }

  async function reference(server: ServeHandle, apiKey?: string): Promise<string> {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
      body: JSON.stringify({
        messages: [{ role: 'user', content: once.prompt }],
        temperature: 0,
        max_tokens: MAX_TOKENS,
      }),
    });
    return ((await res.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
  }

  test('loads, lists the model, and streams the greedy reply', async () => {
    const server = await serve();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      await page.goto(server.url);
      await expect.poll(() => page.locator('#model option').allTextContents()).toEqual(['stories260K']);
      await expect.poll(() => page.textContent('#status')).toBe('Ready: stories260K');
      expect(await page.isHidden('#key-field')).toBe(true);
      const reply = await sendGreedy(page, once.prompt);
      expect(reply).toBe(await reference(server));
      expect(reply.trimStart()).toBe(once.greedy_text);
      expect(await page.locator('.message.user .content').first().textContent()).toBe(once.prompt);
      expect(await page.textContent('#stats')).toMatch(new RegExp(`${MAX_TOKENS} tokens`));
      await page.click('#reset');
      expect(await page.locator('.message').count()).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await server.close();
    }
  });

  test('asks for the API key when the server needs one, then chats with it', async () => {
    const server = await serve('sekret');
    const page = await browser.newPage();
    try {
      await page.goto(server.url);
      await page.locator('#key-field').waitFor({ state: 'visible' });
      await expect.poll(() => page.textContent('#status')).toMatch(/needs an API key/);
      await page.fill('#api_key', 'sekret');
      await page.dispatchEvent('#api_key', 'change');
      await expect.poll(() => page.textContent('#status')).toBe('Ready: stories260K');
      expect(await sendGreedy(page, once.prompt)).toBe(await reference(server, 'sekret'));
    } finally {
      await page.close();
      await server.close();
    }
  });
});
