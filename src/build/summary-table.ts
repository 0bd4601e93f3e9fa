// The per-layer tables that `kvserve build` prints and `kvserve engine-info` repeats (int8 layers, fp8 KV cache
// scales): columns padded to their widest cell, numbers in three significant digits.

/** A number in three significant digits, exponential when very large or small. */
export const shortNumber = (v: number): string =>
  Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toPrecision(3);

/** The head and the rows, each column padded to its widest cell, two spaces apart. */
export function formatTable(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)];
}
