// Shared flag parsing for the subcommands: node's util.parseArgs, with its errors turned into
// one-line usage errors and small helpers for typed values.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../errors.ts';
import { REASONING_EFFORTS, type ReasoningEffort } from '../harmony/index.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/** Parses argv against `options`; unknown flags and missing values become a usage error. */
export function parseFlags(argv: string[], options: Options, allowPositionals = true): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return { values: values as Parsed['values'], positionals };
  } catch (e) {
    throw new UserError('usage', flagErrorMessage(e));
  }
}

/** A parseArgs error as one line (the npm scripts print it as the commands do). */
export function flagErrorMessage(e: unknown): string {
  return oneLine((e as Error).message);
}

/**
 * node's parseArgs messages on one line. For "-1" taken as a flag it keeps the hint on how to pass
 * it; for an unknown flag it drops the hint about positionals (a mistyped flag is far likelier).
 */
function oneLine(message: string): string {
  const lines = message.split('\n');
  const first = (lines[0] ?? '').replace(/\. To specify a positional argument starting with a '-'.*$/, '');
  if (first === '') return 'invalid arguments';
  const dashHint = lines.find((l) => l.startsWith('To specify an option argument starting with a dash'));
  return dashHint !== undefined ? `${first} ${dashHint}` : first;
}

export function stringFlag(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function boolFlag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** A numeric flag; rejects non-numbers and values outside [min, max] with a usage error. */
export function numberFlag(p: Parsed, name: string, opts: { min?: number; max?: number; integer?: boolean } = {}): number | undefined {
  const raw = stringFlag(p, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!Number.isFinite(v) || (opts.integer === true && !Number.isInteger(v))) {
    throw new UserError('usage', `--${name} expects ${opts.integer === true ? 'an integer' : 'a number'}, got "${raw}"`);
  }
  if (opts.min !== undefined && v < opts.min) throw new UserError('usage', `--${name} must be >= ${opts.min}, got ${v}`);
  if (opts.max !== undefined && v > opts.max) throw new UserError('usage', `--${name} must be <= ${opts.max}, got ${v}`);
  return v;
}

/** Reads all of stdin as bytes (for callers that check the UTF-8 themselves). */
export async function readStdinBytes(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Reads all of stdin as UTF-8 text. */
export async function readStdin(): Promise<string> {
  return (await readStdinBytes()).toString('utf8');
}

/**
 * Token ids written by a user: separated by spaces, commas or newlines, optionally as a JSON array
 * ("1 2,3\n4", "[1,2,3]"). A word that is not a non-negative integer is an input error naming it,
 * its position and `source` (stdin, arguments).
 */
export function parseIdList(input: string, source: string): number[] {
  const words = input.split(/[\s,[\]]+/).filter((w) => w !== '');
  return words.map((w, i) => {
    if (!/^\d+$/.test(w)) throw new UserError('input', `${source}: "${w.slice(0, 40)}" at position ${i} is not a token id`);
    return Number(w);
  });
}

/** A reasoning effort given by the user (`origin` names the flag or chat command in the message). */
export function parseEffort(value: string, origin: string): ReasoningEffort {
  if (!(REASONING_EFFORTS as readonly string[]).includes(value)) throw new UserError('usage', `${origin} must be low, medium or high, got "${value}"`);
  return value as ReasoningEffort;
}
