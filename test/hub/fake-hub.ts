// A Hugging Face Hub on 127.0.0.1 serving repositories from fixture folders, answering the way the real Hub
// does (as huggingface_hub's and @huggingface/hub's own code reads it):
//   GET /api/models/{repo}/revision/{rev}        model info with `sha`; 404 + X-Error-Code for a bad repo or rev
//   GET /api/models/{repo}/tree/{rev}[/path]     one folder's entries (oid, size, lfs {oid, size, pointerSize}),
//                                                paginated with a Link: <…>; rel="next" header
//   GET /{repo}/resolve/{rev}/{file}             plain git files: the bytes, ETag = git blob sha1, X-Repo-Commit;
//                                                LFS files: 302 to /cdn/{sha256} with X-Linked-Etag/-Size
//   GET /cdn/{sha256}                            the LFS bytes, with Range support
// Gated repositories answer 401 (no token) or 403 (another token) with X-Error-Code: GatedRepo on resolve;
// private ones answer every request with RepositoryNotFound: 401 without a token, 404 with another one.
// `cut` makes the CDN close the socket part-way through a file, as a dropped connection does.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface FakeRepoSpec {
  /** folder whose files are the repo's top level */
  dir: string;
  /** more files, path → bytes (paths may have folders) */
  extra?: Record<string, Buffer>;
  /** revision name → commit hash; `main` at least */
  refs: Record<string, string>;
  /** resolve needs `Authorization: Bearer <gatedToken>` */
  gatedToken?: string;
  /** every request needs `Authorization: Bearer <privateToken>`; without a token the repo does not exist (401) */
  privateToken?: string;
}

interface FakeFile {
  bytes: Buffer;
  lfs: boolean;
  sha256: string;
  gitOid: string;
}

export interface SeenRequest {
  method: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
}

export interface FakeHub {
  url: string;
  requests: SeenRequest[];
  /** close the socket of GET /cdn for `file` once `atByte` has been sent, `times` times */
  cut: { file: string; atByte: number; times: number } | undefined;
  /** answer a resuming Range request (bytes=N- with N > 0) on /cdn with the whole file */
  ignoreRange: boolean;
  close(): Promise<void>;
}

export function gitBlobOid(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function readRepo(spec: FakeRepoSpec): Map<string, FakeFile> {
  const files = new Map<string, FakeFile>();
  const add = (path: string, bytes: Buffer) => {
    // As a default .gitattributes does: weights and other binaries in LFS, text in git.
    const lfs = /\.(safetensors|bin|pth|gguf|onnx)$/.test(path);
    const sha = sha256(bytes);
    const pointer = Buffer.from(
      `version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\nsize ${bytes.length}\n`,
    );
    files.set(path, { bytes, lfs, sha256: sha, gitOid: gitBlobOid(lfs ? pointer : bytes) });
  };
  for (const name of readdirSync(spec.dir))
    if (statSync(join(spec.dir, name)).isFile()) add(name, readFileSync(join(spec.dir, name)));
  for (const [path, bytes] of Object.entries(spec.extra ?? {})) add(path, bytes);
  return files;
}

const PAGE = 4;

export async function startFakeHub(specs: Record<string, FakeRepoSpec>): Promise<FakeHub> {
  const repos = new Map(Object.entries(specs).map(([id, spec]) => [id, { spec, files: readRepo(spec) }]));
  const byHash = new Map<string, FakeFile>();
  for (const r of repos.values()) for (const f of r.files.values()) byHash.set(f.sha256, f);
  const hub: FakeHub = { url: '', requests: [], cut: undefined, ignoreRange: false, close: async () => undefined };
  const sockets = new Set<import('node:net').Socket>();

  const refuse = (res: ServerResponse, status: number, code: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-error-code': code, 'x-error-message': message });
    res.end(JSON.stringify({ error: message }));
  };

  const lookup = (res: ServerResponse, repoId: string, rev: string, auth: string | undefined) => {
    const repo = repos.get(repoId);
    const hidden = repo?.spec.privateToken !== undefined && auth !== `Bearer ${repo.spec.privateToken}`;
    if (!repo || hidden) {
      refuse(res, hidden && !auth ? 401 : 404, 'RepositoryNotFound', 'Repository not found');
      return undefined;
    }
    const commit =
      /^[0-9a-f]{40}$/.test(rev) && Object.values(repo.spec.refs).includes(rev) ? rev : repo.spec.refs[rev];
    if (!commit) {
      refuse(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      return undefined;
    }
    return { repo, commit };
  };

  const sendBytes = (
    req: IncomingMessage,
    res: ServerResponse,
    bytes: Buffer,
    headers: Record<string, string>,
    cutFile?: string,
  ) => {
    let start = 0;
    let end = bytes.length - 1;
    let m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (hub.ignoreRange && cutFile && m && m[1] !== '0') m = null;
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), end) : end;
      if (start > end) {
        res.writeHead(416, { 'content-range': `bytes */${bytes.length}` });
        return res.end();
      }
    }
    const body = bytes.subarray(start, end + 1);
    res.writeHead(m ? 206 : 200, {
      ...headers,
      'accept-ranges': 'bytes',
      'content-length': String(body.length),
      'content-type': 'application/octet-stream',
      ...(m ? { 'content-range': `bytes ${start}-${end}/${bytes.length}` } : {}),
    });
    const cut = hub.cut;
    if (cut && cutFile === cut.file && cut.times > 0 && end >= cut.atByte && body.length > 1) {
      cut.times--;
      // Send up to the cut (nothing when the request already starts past it), then drop the connection.
      res.write(body.subarray(0, Math.max(0, cut.atByte - start)), () => res.socket?.destroy());
      return;
    }
    res.end(body);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    hub.requests.push({
      method: req.method ?? '',
      path,
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
    // Each route returns, so the next pattern is tried only when the one before did not match.
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    if (m) {
      const found = lookup(res, m[1]!, m[2]!, req.headers.authorization);
      if (!found) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(
        JSON.stringify({
          _id: `fake-${m[1]}`,
          id: m[1],
          sha: found.commit,
          private: false,
          gated: found.repo.spec.gatedToken ? 'manual' : false,
          downloads: 0,
          likes: 0,
          lastModified: '2024-01-01T00:00:00.000Z',
          tags: [],
          library_name: 'transformers',
          siblings: [...found.repo.files.keys()].map((rfilename) => ({ rfilename })),
        }),
      );
    }
    m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/.exec(path);
    if (m) {
      const found = lookup(res, m[1]!, m[2]!, req.headers.authorization);
      if (!found) return;
      const folder = m[3] ? `${m[3]}/` : '';
      const entries = new Map<string, object>();
      for (const [p, f] of found.repo.files) {
        if (!p.startsWith(folder)) continue;
        const rest = p.slice(folder.length);
        if (rest.includes('/') && url.searchParams.get('recursive') !== 'true') {
          const dir = folder + rest.split('/')[0];
          entries.set(dir, { type: 'directory', oid: gitBlobOid(Buffer.from(dir)), size: 0, path: dir });
        } else {
          entries.set(p, {
            type: 'file',
            oid: f.gitOid,
            size: f.bytes.length,
            path: p,
            ...(f.lfs ? { lfs: { oid: f.sha256, size: f.bytes.length, pointerSize: 134 } } : {}),
          });
        }
      }
      const all = [...entries.values()];
      const cursor = Number(url.searchParams.get('cursor') ?? 0);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (cursor + PAGE < all.length) {
        const next = new URL(`${hub.url}${url.pathname}${url.search}`);
        next.searchParams.set('cursor', String(cursor + PAGE));
        headers.link = `<${next.href}>; rel="next"`;
      }
      res.writeHead(200, headers);
      return res.end(JSON.stringify(all.slice(cursor, cursor + PAGE)));
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m) {
      const found = lookup(res, m[1]!, m[2]!, req.headers.authorization);
      if (!found) return;
      const gated = found.repo.spec.gatedToken;
      if (gated && req.headers.authorization !== `Bearer ${gated}`) {
        const msg = `Access to model ${m[1]} is restricted. You must have access to it and be authenticated to access it.`;
        return refuse(res, req.headers.authorization ? 403 : 401, 'GatedRepo', msg);
      }
      const file = found.repo.files.get(m[3]!);
      if (!file) return refuse(res, 404, 'EntryNotFound', `${m[3]} does not exist on "${m[2]}"`);
      const common = { 'x-repo-commit': found.commit, etag: `"${file.gitOid}"` };
      if (file.lfs) {
        res.writeHead(302, {
          ...common,
          location: `/cdn/${file.sha256}`,
          'x-linked-etag': `"${file.sha256}"`,
          'x-linked-size': String(file.bytes.length),
        });
        return res.end();
      }
      return sendBytes(req, res, file.bytes, common);
    }
    m = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (m) {
      const file = byHash.get(m[1]!);
      if (!file) return refuse(res, 404, 'EntryNotFound', 'no such object');
      const name = [...repos.values()].flatMap((r) => [...r.files]).find(([, f]) => f === file)![0];
      return sendBytes(req, res, file.bytes, { etag: `"${file.sha256}"` }, name);
    }
    refuse(res, 404, 'EntryNotFound', `no route ${path}`);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hub.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return hub;
}

/** A port nothing listens on: bound, then released. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
