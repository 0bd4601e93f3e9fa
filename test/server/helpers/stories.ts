// The stories260K demo model and transformers' reference outputs (models/stories260K, computed by someone else: transformers).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultModelDir } from '../../../src/config.js';

export const storiesDir = defaultModelDir;

export interface Expected {
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
  greedy_text: string;
}

export const expected: Expected[] = JSON.parse(readFileSync(join(storiesDir, 'expected.json'), 'utf8'));

/** The reference continuation of a prompt, or a cycle of plain tokens for any other prompt. */
export function storiesScript(promptIds: number[]): number[] {
  const hit = expected.find(
    (e) =>
      e.prompt_ids.length <= promptIds.length &&
      e.prompt_ids.every((t, i) => promptIds[promptIds.length - e.prompt_ids.length + i] === t),
  );
  return hit ? hit.greedy_ids : expected[0]!.greedy_ids;
}
