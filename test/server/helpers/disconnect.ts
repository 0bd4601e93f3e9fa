// What the disconnect tests share: a metric read off /metrics as an operator reads it, and a client that
// reads a stream for a while and then goes away.

/** The value of the first series named `name` on `url`/metrics. */
export async function metricValue(url: string, name: string): Promise<number> {
  const [v] = await metricValues(url, [name]);
  if (v === undefined) throw new Error(`${name} not exported`);
  return v;
}

/** The first series of each name in one scrape; undefined for a name the server does not export. */
export async function metricValues(url: string, names: string[]): Promise<Array<number | undefined>> {
  const lines = (await (await fetch(`${url}/metrics`)).text()).split('\n');
  return names.map((name) => {
    const line = lines.find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ').at(-1));
  });
}

export async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Reads `stream` up to its `k`-th chunk, runs `atK` (checks made while the request still runs; their
 * failures propagate), then aborts through `controller`. Returns how many chunks were read in all.
 */
export async function readThenDisconnect(
  stream: AsyncIterable<unknown>,
  controller: AbortController,
  k: number,
  atK: () => Promise<void>,
): Promise<number> {
  const chunks = stream[Symbol.asyncIterator]();
  let read = 0;
  for (;;) {
    let next: IteratorResult<unknown>;
    try {
      next = await chunks.next();
    } catch {
      break; // the openai client may end the iteration quietly or throw an APIUserAbortError: either is a disconnect
    }
    if (next.done) break;
    if (++read === k) {
      try {
        await atK();
      } finally {
        controller.abort();
      }
    }
  }
  return read;
}
