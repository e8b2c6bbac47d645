// The helpers that make error messages safe to print: untrusted text quoted with its control
// characters escaped and its length cut, and UserError's own safety net for every message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeControls, MAX_MESSAGE_CHARS, QUOTE_CHARS, quoted, truncateText, UserError } from '../../src/errors.ts';

test('escapeControls writes C0/C1 controls, DEL, line separators and bidi overrides as escapes', () => {
  assert.equal(escapeControls('a\nb\tc\rd'), 'a\\nb\\tc\\rd');
  assert.equal(escapeControls('\u001b[2J\u0007\u0000\u007f\u009b'), '\\u001b[2J\\u0007\\u0000\\u007f\\u009b');
  assert.equal(escapeControls('x\u2028y\u202ez\u2066'), 'x\\u2028y\\u202ez\\u2066');
  // Printable text, quotes and non-Latin scripts are left alone.
  assert.equal(escapeControls('"héllo" — 你好 🙂'), '"héllo" — 你好 🙂');
});

test('truncateText cuts with an ellipsis and never splits a surrogate pair', () => {
  assert.equal(truncateText('abc', 3), 'abc');
  assert.equal(truncateText('abcd', 3), 'abc…');
  assert.equal(truncateText('ab🙂', 3), 'ab…');
});

test('quoted: double quotes, escapes, at most QUOTE_CHARS characters of the text', () => {
  assert.equal(quoted('robot\u001b[31m'), '"robot\\u001b[31m"');
  const q = quoted('w '.repeat(200_000));
  assert.equal(q, `"${'w '.repeat(QUOTE_CHARS / 2)}…"`);
});

test('UserError messages are one line of bounded length whatever reached them', () => {
  const e = new UserError('input', `bad "${'\u001b]0;title\u0007\n'.repeat(1000)}"`);
  assert.ok(!e.message.includes('\n') && !e.message.includes('\u001b') && !e.message.includes('\u0007'));
  assert.equal(e.message.length, MAX_MESSAGE_CHARS + 1);
  assert.ok(e.message.endsWith('…'));
  assert.equal(new UserError('usage', 'plain message').message, 'plain message');
});
