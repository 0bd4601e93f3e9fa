// The top level of a JSON object that may still be arriving: where each member's value starts and (once it
// is complete) ends. What a streamed tool call needs: the function name as soon as its string closes, and the
// arguments' text as it grows, without waiting for the whole call. Raw text positions, no parsing of values.

export interface Member {
  key: string;
  start: number; // index of the value's first character
  end: number; // index after its last character, -1 while it is still open
}

export interface ScannedObject {
  members: Member[];
  end: number; // index after the closing brace, -1 while the object is open
  broken: boolean; // the text is not (the start of) a JSON object
}

const WS = new Set([' ', '\t', '\n', '\r']);

/** Scans the object whose `{` is at s[start]. */
export function scanObject(s: string, start: number): ScannedObject {
  const out: ScannedObject = { members: [], end: -1, broken: false };
  let phase: 'key' | 'colon' | 'value' | 'after' = 'key';
  let i = start + 1;
  let key = '';
  const broken = () => {
    out.broken = true;
    return out;
  };
  while (i < s.length) {
    const c = s[i]!;
    if (WS.has(c)) {
      i++;
      continue;
    }
    if (phase === 'key') {
      if (c === '}' && out.members.length === 0) return { ...out, end: i + 1 };
      if (c !== '"') return broken();
      const e = stringEnd(s, i);
      if (e < 0) return out;
      key = JSON.parse(s.slice(i, e)) as string;
      i = e;
      phase = 'colon';
    } else if (phase === 'colon') {
      if (c !== ':') return broken();
      i++;
      phase = 'value';
    } else if (phase === 'value') {
      const e = valueEnd(s, i);
      out.members.push({ key, start: i, end: e });
      if (e < 0) return out;
      i = e;
      phase = 'after';
    } else {
      if (c === ',') phase = 'key';
      else if (c === '}') return { ...out, end: i + 1 };
      else return broken();
      i++;
    }
  }
  return out;
}

/** The index after the string starting at s[i] (a quote), or -1 if it has not closed yet. */
function stringEnd(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    if (s[j] === '\\') j++;
    else if (s[j] === '"') return j + 1;
  }
  return -1;
}

/** The index after the value starting at s[i], or -1 if it may still go on. */
function valueEnd(s: string, i: number): number {
  const c = s[i]!;
  if (c === '"') return stringEnd(s, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      const d = s[j]!;
      if (d === '"') {
        const e = stringEnd(s, j);
        if (e < 0) return -1;
        j = e - 1;
      } else if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  // A number, true, false or null: it ends where a delimiter follows.
  for (let j = i; j < s.length; j++) if (s[j] === ',' || s[j] === '}' || WS.has(s[j]!)) return j;
  return -1;
}
