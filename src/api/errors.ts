// The library's one error class. Every failure the caller can cause (a bad option, a model folder
// that does not load, a prompt longer than the context) reaches the caller as a GptossError whose
// `code` says which kind; anything else thrown is a bug and keeps its own class and stack.
import { UserError } from '../errors.ts';

/**
 * What went wrong, in one word:
 * `usage` (a bad option), `input` (invalid messages, schema or JSON), `checkpoint` (the model's
 * files), `memory` (the model does not fit), `context` (the prompt does not fit the context
 * window), `tool` (a tool failed in a way the caller must see), `network` (a download or endpoint).
 */
export type GptossErrorCode = 'usage' | 'input' | 'checkpoint' | 'memory' | 'context' | 'tool' | 'network';

/** An error the caller caused or can fix; `message` is one line naming the problem. */
export class GptossError extends Error {
  /** Which kind of problem this is; stable across versions, unlike the message. */
  readonly code: GptossErrorCode;

  /** Creates an error of kind `code`; `cause` is the underlying error, when there is one. */
  constructor(code: GptossErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GptossError';
    this.code = code;
  }
}

/** The library's form of `e`: UserErrors become GptossErrors with the same kind; the rest pass through. */
export function toGptossError(e: unknown): unknown {
  if (e instanceof UserError) return new GptossError(e.kind, e.message, { cause: e });
  return e;
}

/** Runs `fn`, turning a UserError it throws into a GptossError. */
export async function translateErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toGptossError(e);
  }
}

/** Runs `fn`, turning a UserError it throws into a GptossError (for the synchronous functions). */
export function translateErrorsSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toGptossError(e);
  }
}
