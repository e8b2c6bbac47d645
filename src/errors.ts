// The errors a user can cause. Each carries a one-line message naming the file, tensor, field or
// position at fault; the CLI prints it and exits with status 2, the server maps it to the OpenAI
// error shape. Anything else thrown is a bug and keeps its stack.

export type UserErrorKind =
  | 'usage' // bad command-line flags
  | 'input' // invalid JSON, unknown role, malformed completion ...
  | 'checkpoint' // missing or misnamed tensor, wrong shape, truncated file, unsupported dtype
  | 'memory' // the model does not fit
  | 'context' // prompt longer than the context window
  | 'tool' // unknown tool or tool failure surfaced to the user
  | 'network'; // download failures

export class UserError extends Error {
  readonly kind: UserErrorKind;
  constructor(kind: UserErrorKind, message: string) {
    super(message);
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
