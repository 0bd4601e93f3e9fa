// Model-loading progress, shared by `serve`, `generate` and `chat`. The native loader reports each stage
// (config, weights, backend) from 0 to 1, and the weights stage once per tensor as the backend prepares it.
// `generate` and `chat` show it on stderr (their stdout is the text): on a terminal one line rewritten in place
// at every percent; elsewhere (logs, CI) a line at each stage's start and end and each quarter crossed in
// between, so a log shows movement without being flooded. `serve` logs it as records (`logProgress`).
export type ProgressFn = (stage: string, fraction: number) => void;

/** What progress records need of a logger: pino's `info(fields, msg)`. */
export interface InfoLog {
  info(fields: object, msg: string): void;
}

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

/**
 * Loading progress as info records, `{"msg":"loading","stage":"weights","percent":40}`: a stage's start, each
 * tenth crossed and its end, so at most 11 records a stage however many tensors the model has.
 */
export function logProgress(log: InfoLog): ProgressFn {
  let stage = '';
  let tenth = -1;
  return (name, fraction) => {
    if (name !== stage) {
      stage = name;
      tenth = -1;
    }
    const t = Math.floor(fraction * 10);
    if (t <= tenth) return;
    tenth = t;
    log.info({ stage: name, percent: Math.min(100, Math.floor(fraction * 100)) }, 'loading');
  };
}
