// Model-loading progress on stderr, shared by `serve` and `generate`: one line rewritten in place on a
// terminal; elsewhere (logs, CI) only each stage's start and end, so a log is not flooded.
export type ProgressFn = (stage: string, fraction: number) => void;

export function stderrProgress(prefix = 'loading: '): ProgressFn {
  const tty = process.stderr.isTTY;
  let last = '';
  return (stage, fraction) => {
    const line = `${prefix}${stage} ${(fraction * 100).toFixed(0)}%`;
    if (line === last) return;
    last = line;
    if (tty) process.stderr.write(`\r\x1b[K${line}${fraction >= 1 ? '\n' : ''}`);
    else if (fraction >= 1 || fraction === 0) process.stderr.write(`${line}\n`);
  };
}
