// The shared flag parsing of every subcommand: node's parseArgs errors become one-line usage
// errors (keeping the hint for values that start with a dash), and typed values are checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { numberFlag, parseFlags, parseIdList } from '../../src/cli/args.ts';
import { readProblem, UserError } from '../../src/errors.ts';

function usageError(f: () => unknown): string {
  let message = '';
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.equal(e.kind, 'usage');
    message = e.message;
    return true;
  });
  assert.ok(!message.includes('\n'), `one line: ${JSON.stringify(message)}`);
  return message;
}

const OPTIONS = { temperature: { type: 'string' }, effort: { type: 'string', short: 'r' }, json: { type: 'boolean' } } as const;

test('unknown flags, missing values and stray arguments are one line naming the flag', () => {
  assert.equal(usageError(() => parseFlags(['--bogus'], OPTIONS)), "Unknown option '--bogus'");
  assert.equal(usageError(() => parseFlags(['--bogus'], OPTIONS, false)), "Unknown option '--bogus'");
  assert.equal(usageError(() => parseFlags(['--temperature'], OPTIONS)), "Option '--temperature <value>' argument missing");
  assert.equal(usageError(() => parseFlags(['--json=1'], OPTIONS)), "Option '--json' does not take an argument");
  assert.match(usageError(() => parseFlags(['extra'], OPTIONS, false)), /^Unexpected argument 'extra'/);
});

test('a value that starts with a dash keeps the hint on how to pass it', () => {
  assert.equal(
    usageError(() => parseFlags(['--temperature', '-1'], OPTIONS)),
    "Option '--temperature' argument is ambiguous. To specify an option argument starting with a dash use '--temperature=-XYZ'.",
  );
  assert.match(usageError(() => parseFlags(['-r', '-x'], OPTIONS)), /^Option '-r' argument is ambiguous\. To specify .* '-r-XYZ'\.$/);
  // Written as the hint says, the value arrives and numberFlag judges it.
  const p = parseFlags(['--temperature=-1'], OPTIONS);
  assert.equal(usageError(() => numberFlag(p, 'temperature', { min: 0 })), '--temperature must be >= 0, got -1');
});

test('numberFlag rejects non-numbers, non-integers and values out of range', () => {
  const p = parseFlags(['--temperature', 'warm'], OPTIONS);
  assert.equal(usageError(() => numberFlag(p, 'temperature')), '--temperature expects a number, got "warm"');
  const q = parseFlags(['--temperature', '1.5'], OPTIONS);
  assert.equal(usageError(() => numberFlag(q, 'temperature', { integer: true })), '--temperature expects an integer, got "1.5"');
  assert.equal(usageError(() => numberFlag(q, 'temperature', { max: 1 })), '--temperature must be <= 1, got 1.5');
  assert.equal(numberFlag(q, 'temperature', { min: 0, max: 2 }), 1.5);
});

test('readProblem names why a file could not be read', () => {
  const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: something`), { code });
  assert.equal(readProblem(errno('ENOENT')), 'no such file');
  assert.equal(readProblem(errno('EISDIR')), 'is a folder, not a file');
  assert.equal(readProblem(errno('EACCES')), 'cannot read (EACCES)');
  assert.equal(readProblem(new Error('first line\nsecond')), 'cannot read (first line)');
});

test('parseIdList reads ids separated by spaces, commas, newlines or as a JSON array, and names a bad word', () => {
  assert.deepEqual(parseIdList('1 2,3\n4', 'stdin'), [1, 2, 3, 4]);
  assert.deepEqual(parseIdList('[200006, 17, 0]\n', 'stdin'), [200006, 17, 0]);
  assert.deepEqual(parseIdList('  \n', 'stdin'), []);
  for (const [input, message] of [
    ['1 x3 2', 'stdin: "x3" at position 1 is not a token id'],
    ['1,-2', 'stdin: "-2" at position 1 is not a token id'],
    ['1.5', 'stdin: "1.5" at position 0 is not a token id'],
  ] as const) {
    assert.throws(() => parseIdList(input, 'stdin'), (e: unknown) => e instanceof UserError && e.kind === 'input' && e.message === message);
  }
});
