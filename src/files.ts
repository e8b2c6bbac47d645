// Opening the files a user names or a command reads (checkpoints' config.json, *.safetensors, the
// index and markers; the tokenizer's ranks; --developer @FILE, eval data): regular files only. A
// FIFO or a device named like one would make a plain open or read wait forever, and a folder is no
// file, so files are opened without blocking and anything but a regular file is refused with one
// line. A leaf beside errors.ts: every layer may use it.
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync, type Stats } from 'node:fs';
import { readProblem, UserError, type UserErrorKind } from './errors.ts';

/** Why a file of these stats cannot be read as a file, or undefined for a regular file. */
function notRegular(s: Stats): string | undefined {
  if (s.isFile()) return undefined;
  if (s.isDirectory()) return 'is a folder, not a file';
  if (s.isFIFO()) return 'is a named pipe (FIFO), not a regular file';
  if (s.isSocket()) return 'is a socket, not a regular file';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'is a device, not a regular file';
  return 'is not a regular file';
}

/** True when `path` is a folder (following links); false when it is anything else or absent. */
export function isFolder(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
}

/** Opens `path` for reading when it is a regular file; otherwise UserError(kind, "PATH: why"). */
export function openRegularFile(path: string, kind: UserErrorKind = 'checkpoint'): number {
  let fd: number;
  try {
    // Without O_NONBLOCK, opening a FIFO for reading waits for a writer. Regular files ignore it.
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw new UserError(kind, `${path}: ${readProblem(e)}`);
  }
  const problem = notRegular(fstatSync(fd));
  if (problem !== undefined) {
    closeSync(fd);
    throw new UserError(kind, `${path}: ${problem}`);
  }
  return fd;
}

/** The bytes of the regular file `path` (see openRegularFile for the errors). */
export function readRegularBytes(path: string, kind: UserErrorKind = 'checkpoint'): Buffer {
  const fd = openRegularFile(path, kind);
  try {
    return readFileSync(fd);
  } catch (e) {
    throw new UserError(kind, `${path}: ${readProblem(e)}`);
  } finally {
    closeSync(fd);
  }
}

/** The text of the regular file `path` (see openRegularFile for the errors). */
export function readRegularFile(path: string, kind: UserErrorKind = 'checkpoint'): string {
  return readRegularBytes(path, kind).toString('utf8');
}

/** The parsed JSON of the regular file `path`; UserError("PATH: not valid JSON (why)") otherwise. */
export function readJson(path: string, kind: UserErrorKind = 'checkpoint'): unknown {
  const text = readRegularFile(path, kind);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(kind, `${path}: not valid JSON (${(e as Error).message})`);
  }
}
