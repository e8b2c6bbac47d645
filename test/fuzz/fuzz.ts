// Shared pieces of the fuzz suite: the seed and the number of cases (bounded so the whole test run
// stays short; `npm run fuzz` scales both up), a seeded source of random choices, and the property
// every fuzzed entry point must keep: a correct result or a clear one-line error, never a crash.
import assert from 'node:assert/strict';
import { isUserError, MAX_MESSAGE_CHARS } from '../../src/errors.ts';
import { seededRandom } from '../../src/random.ts';

/** Cases per fuzz target: the suite's default, times GPTOSS_FUZZ_SCALE (npm run fuzz sets it). */
export function fuzzCases(base: number): number {
  const scale = Number(process.env.GPTOSS_FUZZ_SCALE ?? '1');
  return Math.max(1, Math.round(base * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

/** The seed of this run: GPTOSS_FUZZ_SEED, else a fixed one so CI runs the same cases every time. */
export const FUZZ_SEED = Number(process.env.GPTOSS_FUZZ_SEED ?? '20261207') >>> 0;

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = seededRandom(seed);
  }
  float(): number {
    return this.next();
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

/** The longest error line the project prints for one problem: the message bound plus its ellipsis. */
export const MAX_ERROR_LENGTH = MAX_MESSAGE_CHARS + 1;

/** What a clear error is: a UserError whose message is one line, bounded, with no control bytes. */
export function assertClearError(e: unknown, what: string): void {
  if (!isUserError(e)) {
    assert.fail(`${what}: expected a UserError, got ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
  }
  assertOneLine(e.message, what);
}

/** One line, bounded, and free of control characters that would drive a terminal. */
export function assertOneLine(message: string, what: string): void {
  assert.ok(message.length > 0, `${what}: empty error message`);
  assert.ok(message.length <= MAX_ERROR_LENGTH, `${what}: error of ${message.length} characters: ${message.slice(0, 200)}...`);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(message, /[\u0000-\u001f\u007f-\u009f]/, `${what}: control character in error: ${JSON.stringify(message.slice(0, 200))}`);
}
