// Stop strings over a stream of text pieces. Text that could still become the start of a stop string is
// held back; a completed stop string truncates the output there. As in vLLM, the output ends after the
// first piece (token) that completes any stop string, cut at the earliest occurrence in the text so far;
// a longer stop string that starts earlier but would only complete later does not count.
//
// Invariant: the emitted text never ends with a proper prefix of any stop string at the moment it is
// emitted, so any stop string that appears later must begin inside the held-back buffer. Hence searching
// the buffer alone finds every occurrence, across any number of chunk boundaries.

export interface StopMatch {
  /** Text safe to send now (never contains a stop string). */
  text: string;
  /** The stop string that ended the output, when one did. */
  stop?: string;
}

export class StopStringMatcher {
  private buffer = '';
  private readonly maxHold: number;

  constructor(
    private readonly stops: readonly string[],
    /** vLLM's include_stop_str_in_output: keep the matched stop string at the end of the text. */
    private readonly includeStop = false,
  ) {
    this.stops = stops.filter((s) => s.length > 0);
    this.maxHold = Math.max(0, ...this.stops.map((s) => s.length - 1));
  }

  /**
   * Adds new text. With `active` false (fewer than min_tokens so far, vLLM's rule) nothing matches and
   * nothing is held back.
   */
  push(piece: string, active = true): StopMatch {
    this.buffer += piece;
    if (!active || this.stops.length === 0) return { text: this.take(this.buffer.length) };
    let at = -1;
    let which = '';
    for (const s of this.stops) {
      const i = this.buffer.indexOf(s);
      if (i >= 0 && (at < 0 || i < at || (i === at && s.length > which.length))) {
        at = i;
        which = s;
      }
    }
    if (at >= 0) {
      const text = this.buffer.slice(0, this.includeStop ? at + which.length : at);
      this.buffer = '';
      return { text, stop: which };
    }
    return { text: this.take(this.buffer.length - this.heldSuffix()) };
  }

  /** The output ended for another reason: whatever was held back is ordinary text. */
  flush(): string {
    return this.take(this.buffer.length);
  }

  /** Length of the longest suffix of the buffer that is a proper prefix of some stop string. */
  private heldSuffix(): number {
    const limit = Math.min(this.maxHold, this.buffer.length);
    for (let len = limit; len > 0; len--) {
      const tail = this.buffer.slice(this.buffer.length - len);
      if (this.stops.some((s) => s.length > len && s.startsWith(tail))) return len;
    }
    return 0;
  }

  private take(n: number): string {
    const text = this.buffer.slice(0, n);
    this.buffer = this.buffer.slice(n);
    return text;
  }
}
