// The assertion the adapter tests share: reading a PEFT adapter folder (for the tiny shape) is
// refused with a one-line UserError that names the problem.
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.ts';
import { readPeftAdapter } from '../../src/train/peft.ts';
import { TINY } from './tiny.ts';

export function refusesAdapter(dir: string, fragment: RegExp): void {
  assert.throws(() => readPeftAdapter(dir, TINY), (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    assert.match(e.message, fragment);
    return true;
  });
}
