// The errors a user can cause. Each carries a one-line message naming the file, tensor, field or
// position at fault; the CLI prints it and exits with status 2, the server maps it to the OpenAI
// error shape. Anything else thrown is a bug and keeps its stack. Messages quote untrusted text
// (input, file contents) through `quoted`, and every message is made safe for a terminal: control
// characters escaped, the length bounded.

export type UserErrorKind =
  | 'usage' // bad command-line flags
  | 'input' // invalid JSON, unknown role, malformed completion ...
  | 'checkpoint' // missing or misnamed tensor, wrong shape, truncated file, unsupported dtype
  | 'memory' // the model does not fit
  | 'context' // prompt longer than the context window
  | 'tool' // unknown tool or tool failure surfaced to the user
  | 'network'; // download failures

/** Longest message a UserError keeps: one line for a person, never a dump of the input. */
export const MAX_MESSAGE_CHARS = 2000;
/** Longest piece of untrusted text `quoted` keeps. */
export const QUOTE_CHARS = 200;

// C0 and C1 control characters and DEL, the Unicode line and paragraph separators, and the
// bidirectional marks and overrides: what could end the line, move the cursor, recolour or reorder
// what a terminal shows.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** `text` with every control character written as an escape (\n, \t, \r, else \u001b style). */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE_CHARS, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** At most `max` UTF-16 units of `text` (never half a surrogate pair), with an ellipsis when cut. */
export function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

/**
 * Untrusted text for an error message: in double quotes, control characters escaped, cut to `max`
 * characters with an ellipsis (a 400 KB header gave an 800 KB "one-line" error, and raw escape
 * bytes in it reached the terminal).
 */
export function quoted(text: string, max = QUOTE_CHARS): string {
  return `"${escapeControls(truncateText(text, max))}"`;
}

export class UserError extends Error {
  readonly kind: UserErrorKind;
  constructor(kind: UserErrorKind, message: string) {
    // The safety net for text that reached a message without `quoted`.
    super(truncateText(escapeControls(message), MAX_MESSAGE_CHARS));
    this.name = 'UserError';
    this.kind = kind;
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

/** Why reading a file failed, in words for a one-line message: "no such file", "is a folder, not a file", "cannot read (EACCES)". */
export function readProblem(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a folder, not a file';
  return `cannot read (${code ?? (e instanceof Error ? e.message.split('\n')[0] : String(e))})`;
}
