// OpenAI's error envelope, checked the same way everywhere: exactly {message, type, param, code}, and the
// status and type that src/server/errors.ts assigns to the code.
import { expect } from 'vitest';
import { errorCodes } from '../../../src/server/errors.js';

export function expectEnvelope(
  status: number,
  body: string,
  code: keyof typeof errorCodes,
): { message: string; param: string | null } {
  let json: { error?: Record<string, unknown> };
  try {
    json = JSON.parse(body);
  } catch {
    throw new Error(`not JSON (status ${status}): ${body.slice(0, 200)}`);
  }
  expect(json.error, body).toBeDefined();
  expect(Object.keys(json.error!).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(json.error!.code).toBe(code);
  expect(status).toBe(errorCodes[code].status);
  expect(json.error!.type).toBe(errorCodes[code].type);
  expect(typeof json.error!.message).toBe('string');
  return json.error as { message: string; param: string | null };
}
