// Every way talking to the Hub fails, as one line that says what to do. The Hub tells its refusals apart by
// the X-Error-Code header (RepositoryNotFound, RevisionNotFound, EntryNotFound, GatedRepo), which
// @huggingface/hub's HubApiError drops, so `hubFetch` reads it before the library sees the response.
import { ConfigError } from '../config.js';

/** A ConfigError: the model argument, the token or the network setup is what the user has to change. */
export class HubError extends ConfigError {
  override name = 'HubError';
}

export interface HubContext {
  endpoint: string;
  repo: string;
  revision: string;
  tokenSent: boolean;
  cacheDir: string;
}

/** Failures of the connection itself, as undici reports them in `cause.code`. */
const NETWORK_CODES = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'CERT_HAS_EXPIRED',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
]);

/** The code of a failed fetch (`TypeError: fetch failed` with the socket error as its cause), if it is one. */
export function networkCode(err: unknown): string | undefined {
  for (
    let e = err as { code?: unknown; cause?: unknown; errors?: unknown[] } | undefined, depth = 0;
    e && depth < 4;
    depth++
  ) {
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
    const first = Array.isArray(e.errors) ? (e.errors[0] as { code?: unknown } | undefined) : undefined;
    if (typeof first?.code === 'string' && NETWORK_CODES.has(first.code)) return first.code;
    e = e.cause as typeof e;
  }
  return undefined;
}

export function unreachable(ctx: HubContext, code: string): HubError {
  return new HubError(
    `cannot reach the Hugging Face Hub at ${ctx.endpoint} (${code}) to fetch ${ctx.repo}; ` +
      `set HF_HUB_OFFLINE=1 to load it from the cache (${ctx.cacheDir}), or HF_ENDPOINT for a mirror`,
  );
}

/** The message for a refused request, or undefined for statuses the library's own error describes well enough. */
export function refusal(ctx: HubContext, status: number, errorCode: string | null, url: string): string | undefined {
  const where = `on ${ctx.endpoint}`;
  if (errorCode === 'RevisionNotFound')
    return `revision "${ctx.revision}" not found in ${ctx.repo} ${where} (--revision takes a branch, tag or commit)`;
  if (errorCode === 'EntryNotFound')
    return `${ctx.repo} at ${ctx.revision} has no file ${decodeURIComponent(url.split('/').pop() ?? '')} ${where}`;
  if (errorCode === 'RepositoryNotFound') {
    // Without a token the Hub answers 401 RepositoryNotFound for a private repository as for a missing one.
    if (status === 401 && !ctx.tokenSent) {
      return (
        `model ${ctx.repo} not found ${where}, or it is private or gated (HTTP 401, no HF_TOKEN set): ` +
        `set HF_TOKEN and accept the model's licence on the Hub at ${ctx.endpoint}/${ctx.repo}`
      );
    }
    return `model ${ctx.repo} not found ${where} (no local folder of that name either)`;
  }
  if (new URL(url).origin !== new URL(ctx.endpoint).origin) {
    return `${new URL(url).host}, where the Hub sent the download of ${ctx.repo}, answered HTTP ${status} (an expired link?); run again to resume`;
  }
  if (status === 401 || status === 403 || errorCode === 'GatedRepo') {
    const token = ctx.tokenSent ? 'HF_TOKEN was sent' : 'no HF_TOKEN set';
    return `${ctx.repo} is gated or private (HTTP ${status}, ${token}): set HF_TOKEN and accept the model's licence on the Hub at ${ctx.endpoint}/${ctx.repo}`;
  }
  if (status === 404) return `model ${ctx.repo} not found ${where} (no local folder of that name either)`;
  return undefined;
}

/**
 * fetch for @huggingface/hub's `fetch` option: a connection failure or a refusal becomes a HubError with the
 * message above; everything else (2xx, 3xx followed, other errors) goes to the library as it came.
 */
export function hubFetch(ctx: HubContext): typeof fetch {
  return async (input, init) => {
    let res: Response;
    try {
      res = await fetch(input, init);
    } catch (e) {
      const code = networkCode(e);
      if (code) throw unreachable(ctx, code);
      throw e;
    }
    if (res.ok) return res;
    const message = refusal(ctx, res.status, res.headers.get('x-error-code'), res.url || String(input));
    if (message === undefined) return res;
    await res.body?.cancel();
    throw new HubError(message);
  };
}

/** A HubApiError or anything else the library threw, as one line naming the repository. */
export function describeHubFailure(ctx: HubContext, err: unknown): Error {
  if (err instanceof HubError) return err;
  const code = networkCode(err);
  if (code) return unreachable(ctx, code);
  const message = err instanceof Error ? err.message : String(err);
  return new HubError(`fetching ${ctx.repo} (revision ${ctx.revision}) from ${ctx.endpoint} failed: ${message}`);
}
