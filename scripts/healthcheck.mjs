// The image's HEALTHCHECK: exits 0 when kvserve's /health answers 200 (the model is loaded and serving),
// 1 otherwise (still loading: 503; not listening; no answer within 4 s). The URL defaults to the image's.
const url = process.argv[2] ?? 'http://127.0.0.1:8000/health';
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
  if (!res.ok) console.error(`kvserve health: ${url} answered ${res.status}`);
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  console.error(`kvserve health: ${url}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
