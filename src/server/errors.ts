// The server's view of failures: every error a client sees is an ApiError rendered in the OpenAI
// error shape `{error:{message,type,param,code}}`. User errors from lower layers are mapped to the
// matching status; anything else becomes a 500 whose message names no internals.
import { escapeControls, isUserError, MAX_MESSAGE_CHARS, truncateText } from '../errors.ts';

export type ApiErrorType = 'invalid_request_error' | 'authentication_error' | 'permission_error' | 'not_found_error' | 'rate_limit_error' | 'server_error';

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

/** The client went away while its request ran (nothing is left to send). */
export class ClientGoneError extends Error {
  constructor() {
    super('the client disconnected');
    this.name = 'ClientGoneError';
  }
}

export class ApiError extends Error {
  readonly status: 400 | 401 | 403 | 404 | 413 | 415 | 429 | 500;
  readonly type: ApiErrorType;
  readonly param: string | null;
  readonly code: string | null;
  constructor(status: ApiError['status'], message: string, options: { type?: ApiErrorType; param?: string | null; code?: string | null } = {}) {
    // Messages quote the client's own input (a JSON parser's complaint, a field value): one bounded
    // line with control characters escaped, whatever a client sends.
    super(truncateText(escapeControls(message), MAX_MESSAGE_CHARS));
    this.name = 'ApiError';
    this.status = status;
    this.type = options.type ?? defaultType(status);
    this.param = options.param ?? null;
    this.code = options.code ?? null;
  }
  toBody(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function defaultType(status: number): ApiErrorType {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 429:
      return 'rate_limit_error';
    case 500:
      return 'server_error';
    default:
      return 'invalid_request_error';
  }
}

/** A 400 naming the offending request field (`param` uses the client's dotted path, e.g. `input[2].role`). */
export function invalid(param: string | null, message: string, code: string | null = null): ApiError {
  return new ApiError(400, message, { param, code });
}

/**
 * Maps anything thrown while serving a request to an ApiError. `inputParam` names the request field
 * that holds the prompt, for context-window errors.
 */
export function toApiError(e: unknown, inputParam: string | null = null): ApiError {
  if (e instanceof ApiError) return e;
  if (isUserError(e)) {
    switch (e.kind) {
      case 'context':
        return new ApiError(400, `This model's maximum context length was exceeded: ${e.message}`, { param: inputParam, code: 'context_length_exceeded' });
      case 'input':
      case 'tool':
      case 'usage':
        return new ApiError(400, e.message, { param: inputParam });
      default:
        return new ApiError(500, 'The server could not complete the request.', { code: e.kind });
    }
  }
  return new ApiError(500, 'The server had an error while processing your request.');
}
