// The Docker image's build steps, without a container engine: scripts/docker-build-steps.sh builds a copy of
// the tree (filtered by .dockerignore, as `docker build` sends it) into a runtime layout in a temp folder,
// which then serves the demo the way the image's CMD does.
//
// Two differences from the image, both outside what the runtime gets: the `deps` stage (npm ci) is replaced
// by a link to this checkout's node_modules, installed by the same `npm ci` from the same lock file; and the
// build runs with KVSERVE_CUDA=OFF, since this machine has no cuBLAS and the kernels-only compile check it
// would run instead produces nothing for the runtime (`npm run build` runs that check already). The server
// listens on 127.0.0.1 and a free port instead of the image's 0.0.0.0:8000.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const exec = promisify(execFile);
const repo = resolve(__dirname, '..', '..');
const expected = JSON.parse(readFileSync(join(repo, 'models', 'stories260K', 'expected.json'), 'utf8')) as Array<{
  prompt: string;
  greedy_text: string;
}>;
const scratch = mkdtempSync(join(tmpdir(), 'kvserve-docker-'));
const src = join(scratch, 'src');
const app = join(scratch, 'app');
const steps = join(src, 'scripts', 'docker-build-steps.sh');

async function step(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await exec('/bin/bash', [steps, ...args], {
      env,
      timeout: 240_000,
      maxBuffer: 64 << 20,
    });
    return { code: 0, output: stdout + stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, output: err.stdout + err.stderr };
  }
}

beforeAll(async () => {
  const ignored = new Set(
    readFileSync(join(repo, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
  mkdirSync(src);
  for (const name of readdirSync(repo)) {
    if (!ignored.has(name)) cpSync(join(repo, name), join(src, name), { recursive: true });
  }
  symlinkSync(join(repo, 'node_modules'), join(src, 'node_modules'));
  const r = await step(['build', src, app], { ...process.env, KVSERVE_CUDA: 'OFF' });
  if (r.code !== 0) throw new Error(`docker-build-steps.sh build failed:\n${r.output.slice(-4000)}`);
}, 300_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('scripts/docker-build-steps.sh', () => {
  test('the build compiled portably: no -march=native', () => {
    const ninja = join(src, 'build', 'build.ninja');
    const makeFlags = join(src, 'build', 'CMakeFiles', 'kvserve.dir', 'flags.make');
    const flags = readFileSync(existsSync(ninja) ? ninja : makeFlags, 'utf8');
    expect(flags).toMatch(/-ffp-contract=off/);
    expect(flags).not.toMatch(/-march=native/);
  });

  test('the runtime layout: the built app and production packages, no sources or dev packages', async () => {
    expect(readdirSync(app).sort()).toEqual([
      'build',
      'configs',
      'dist',
      'models',
      'node_modules',
      'package-lock.json',
      'package.json',
      'scripts',
    ]);
    expect(readdirSync(join(app, 'build'))).toEqual(['Release']);
    expect(readdirSync(join(app, 'build', 'Release'))).toEqual(['kvserve.node']);
    for (const dev of ['typescript', 'vitest', 'cmake-js', 'node-addon-api'])
      expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
    for (const prod of ['fastify', '@huggingface/tokenizers', 'prom-client'])
      expect(existsSync(join(app, 'node_modules', prod)), prod).toBe(true);
    const r = await step(['runtime-check', app]);
    expect(r.output).toMatch(/runtime-check ok/);
    expect(r.code).toBe(0);
  });

  test('runtime-check fails on a layout that lacks a file', async () => {
    const broken = join(scratch, 'broken');
    cpSync(app, broken, { recursive: true });
    rmSync(join(broken, 'models'), { recursive: true });
    const r = await step(['runtime-check', broken]);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/models\/stories260K is missing/);
  });

  test('no-build-tools names the compilers on PATH, and passes where there are none', async () => {
    const withGcc = join(scratch, 'path-with-gcc');
    mkdirSync(withGcc);
    writeFileSync(join(withGcc, 'g++'), '#!/bin/sh\n');
    chmodSync(join(withGcc, 'g++'), 0o755);
    const bad = await step(['no-build-tools'], { PATH: withGcc });
    expect(bad.code).not.toBe(0);
    expect(bad.output).toMatch(/found g\+\+/);
    const empty = join(scratch, 'path-empty');
    mkdirSync(empty);
    const clean = await step(['no-build-tools'], { PATH: empty });
    expect(clean.output).toMatch(/no build tools on PATH/);
    expect(clean.code).toBe(0);
  });
});

describe("the image's CMD on the runtime layout", () => {
  let server: ChildProcess | undefined;
  let base = '';
  let stdout = '';
  let stderr = '';
  const health = (url: string) =>
    exec(process.execPath, [join(app, 'scripts', 'healthcheck.mjs'), url]).then(
      () => 0,
      (e: { code: number }) => e.code,
    );

  beforeAll(async () => {
    // ENTRYPOINT ["node", "dist/cli.js"] + CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--device", "auto"]
    server = spawn(
      process.execPath,
      ['dist/cli.js', 'serve', '--host', '127.0.0.1', '--port', '0', '--device', 'auto'],
      {
        cwd: app,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    server.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    base = await new Promise<string>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`no "listening on" within 30 s:\n${stdout}${stderr}`)), 30_000);
      server!.stdout!.on('data', (d: Buffer) => {
        stdout += d.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
        if (m) {
          clearTimeout(timer);
          res(m[1]!);
        }
      });
      server!.on('exit', (code) => rej(new Error(`the server exited (${code}):\n${stdout}${stderr}`)));
    });
    for (let i = 0; i < 60 && (await health(`${base}/health`)) !== 0; i++) await new Promise((r) => setTimeout(r, 250));
  }, 60_000);

  afterAll(() => {
    server?.kill('SIGTERM');
  });

  test('the health check passes once the demo is loaded, and fails where nothing listens', async () => {
    expect(await health(`${base}/health`)).toBe(0);
    expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'ok' });
    expect(await health('http://127.0.0.1:1/health')).toBe(1);
  });

  test("its log is JSON records on stdout (a container's log is no terminal), nothing on stderr", () => {
    const lines = stdout.split('\n').slice(0, -1);
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines)
      expect(JSON.parse(line)).toMatchObject({ level: expect.any(Number), msg: expect.any(String) });
    expect(stderr).toBe('');
  });

  test('a completion is the greedy text transformers made for the demo model', async () => {
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'stories260K',
        prompt: expected[0]!.prompt,
        max_tokens: 80,
        temperature: 0,
        ignore_eos: true,
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: Array<{ text: string }> };
    expect(body.choices[0]!.text.replace(/^ /, '')).toBe(expected[0]!.greedy_text);
  });
});
