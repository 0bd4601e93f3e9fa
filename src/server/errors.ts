// Every error the API can answer, in OpenAI's envelope: {"error": {"message", "type", "param", "code"}}.
// Routes throw ApiError; app.ts's error handler is the one place that turns anything thrown into a reply.
import type { FastifyError } from 'fastify';
import { EngineError } from '../engine/types.js';

export type ErrorType = 'invalid_request_error' | 'not_found_error' | 'server_overloaded' | 'server_error';

/** The codes clients can switch on. Each has exactly one status and type. */
export const errorCodes = {
  invalid_value: { status: 400, type: 'invalid_request_error' }, // out-of-range or malformed field
  missing_required_parameter: { status: 400, type: 'invalid_request_error' },
  unsupported_parameter: { status: 400, type: 'invalid_request_error' }, // a known feature we do not implement
  unknown_parameter: { status: 400, type: 'invalid_request_error' }, // a field no endpoint knows
  invalid_json: { status: 400, type: 'invalid_request_error' },
  context_length_exceeded: { status: 400, type: 'invalid_request_error' },
  chat_template_missing: { status: 400, type: 'invalid_request_error' },
  chat_template_error: { status: 400, type: 'invalid_request_error' },
  invalid_url: { status: 400, type: 'invalid_request_error' }, // a path that does not percent-decode
  malformed_request: { status: 400, type: 'invalid_request_error' }, // bytes Node's HTTP parser refuses
  invalid_api_key: { status: 401, type: 'invalid_request_error' }, // what OpenAI itself answers
  model_not_found: { status: 404, type: 'invalid_request_error' },
  model_exists: { status: 409, type: 'invalid_request_error' }, // admin API: the name is taken
  insufficient_gpu_memory: { status: 409, type: 'invalid_request_error' }, // admin API: the GPU shares do not fit
  not_found: { status: 404, type: 'not_found_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' }, // with Allow
  request_timeout: { status: 408, type: 'invalid_request_error' }, // headers or body too slow
  request_too_large: { status: 413, type: 'invalid_request_error' },
  uri_too_long: { status: 414, type: 'invalid_request_error' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error' },
  headers_too_large: { status: 431, type: 'invalid_request_error' },
  queue_full: { status: 503, type: 'server_overloaded' }, // with Retry-After
  model_loading: { status: 503, type: 'server_overloaded' }, // with Retry-After
  model_unhealthy: { status: 503, type: 'server_error' }, // with Retry-After: its engine failed and restarts
  model_unavailable: { status: 503, type: 'server_error' }, // it failed to load, or was unloaded or switched mid-request
  server_shutting_down: { status: 503, type: 'server_overloaded' }, // with Retry-After, while draining
  engine_fault: { status: 500, type: 'server_error' },
  internal_error: { status: 500, type: 'server_error' },
} as const satisfies Record<string, { status: number; type: ErrorType }>;

export type ErrorCode = keyof typeof errorCodes;

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: ErrorCode };
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly param: string | null = null,
    /** Seconds, sent as Retry-After (503s). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  get status(): number {
    return errorCodes[this.code].status;
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: errorCodes[this.code].type, param: this.param, code: this.code } };
  }
}

export const invalid = (message: string, param: string | null = null) => new ApiError('invalid_value', message, param);
export const unsupported = (param: string, what: string) =>
  new ApiError('unsupported_parameter', `${what} is not supported by kvserve yet`, param);

/**
 * Maps anything thrown in a handler (ApiError, EngineError, fastify's own errors) onto one ApiError. A
 * server-side failure's detail (an engine fault may describe the whole batch) is for the log, where the
 * caller writes it under `requestId`; the client gets that id to quote instead.
 */
export function toApiError(err: unknown, requestId?: string): ApiError {
  if (err instanceof ApiError) return err;
  const seeLog =
    requestId === undefined
      ? 'the server log has the details'
      : `the server log has the details under request id ${requestId}`;
  if (err instanceof EngineError) {
    if (err.code === 'context_length_exceeded') return new ApiError('context_length_exceeded', err.message);
    if (err.code === 'invalid_request') return new ApiError('invalid_value', err.message);
    return new ApiError('engine_fault', `the engine failed while generating this request; ${seeLog}`);
  }
  const fe = err as Partial<FastifyError> & { validation?: AjvError[] };
  if (fe.validation && fe.validation.length > 0) return fromValidation(fe as FastifyError);
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('request_too_large', 'request body is larger than the server accepts (--body-limit)');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type', 'send the request body as application/json');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError('invalid_json', 'the request body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('invalid_json', 'the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('malformed_request', 'the request body does not match its Content-Length');
    case 'FST_ERR_BAD_URL':
      return new ApiError('invalid_url', 'the request URL is not valid: it does not percent-decode');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ApiError('uri_too_long', 'a path segment of the request URL is too long');
  }
  if (fe.statusCode === 400 && err instanceof SyntaxError)
    return new ApiError('invalid_json', `invalid JSON body: ${err.message}`);
  if (fe.statusCode === 400) return new ApiError('invalid_value', fe.message ?? 'bad request');
  if (fe.statusCode === 413) return new ApiError('request_too_large', fe.message ?? 'request body too large');
  return new ApiError('internal_error', `internal server error; ${seeLog}`);
}

interface AjvError {
  keyword?: string;
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** The accepted forms of the fields whose schema is a union: Ajv's first error would only name the first. */
const UNION_FORMS: Record<string, string> = {
  prompt: 'a string, an array of strings, an array of token ids (integers >= 0), or an array of such arrays, not empty',
  stop: 'a string or an array of at most 4 strings',
  content: 'a string or an array of content parts',
};

function fieldPath(instancePath: string | undefined): string {
  return (instancePath ?? '')
    .split('/')
    .filter(Boolean)
    .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg}`))
    .join('')
    .replace(/^\./, '');
}

/** Ajv's first error, named by the field it is about ("temperature", "messages[0].role"). */
function fromValidation(fe: FastifyError): ApiError {
  const errors = fe.validation as AjvError[];
  const first = errors[0]!;
  const union = errors.find((e) => e.keyword === 'anyOf');
  if (union) {
    const param = fieldPath(union.instancePath);
    const forms = UNION_FORMS[param.replace(/.*\./, '').replace(/\[\d+\]$/, '')];
    if (forms) return new ApiError('invalid_value', `invalid '${param}': must be ${forms}`, param);
  }
  const path = fieldPath(first.instancePath);
  const extra = first.params?.additionalProperty;
  if (first.keyword === 'additionalProperties' && typeof extra === 'string') {
    const param = path ? `${path}.${extra}` : extra;
    return new ApiError('unknown_parameter', `Unrecognized request argument supplied: ${param}`, param);
  }
  const missing = first.params?.missingProperty;
  if (typeof missing === 'string') {
    const param = path ? `${path}.${missing}` : missing;
    return new ApiError('missing_required_parameter', `missing required parameter: '${param}'`, param);
  }
  const param = path || null;
  const detail = first.message ?? fe.message ?? 'invalid value';
  return new ApiError('invalid_value', param ? `invalid '${param}': ${detail}` : `invalid request: ${detail}`, param);
}
