// Model-loading progress on stderr, shared by `serve`, `generate` and `chat`. The native loader reports
// each stage (config, weights, backend) from 0 to 1, and the weights stage once per tensor as the backend
// prepares it. On a terminal one line is rewritten in place at every percent; elsewhere (logs, CI) a line
// at each stage's start and end and each quarter crossed in between, so a log shows movement without
// being flooded.
export type ProgressFn = (stage: string, fraction: number) => void;

export function stderrProgress(
  prefix = 'loading: ',
  out: Pick<NodeJS.WriteStream, 'isTTY' | 'write'> = process.stderr,
): ProgressFn {
  const tty = out.isTTY === true;
  let last = '';
  let stage = '';
  let quarter = -1;
  return (name, fraction) => {
    const line = `${prefix}${name} ${Math.floor(fraction * 100)}%`;
    if (line === last) return;
    last = line;
    if (tty) {
      out.write(`\r\x1b[K${line}${fraction >= 1 ? '\n' : ''}`);
      return;
    }
    if (name !== stage) {
      stage = name;
      quarter = -1;
    }
    const q = Math.floor(fraction * 4);
    if (q > quarter || fraction === 0) {
      quarter = q;
      out.write(`${line}\n`);
    }
  };
}
