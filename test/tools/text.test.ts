// The browser's line wrapping against CPython's textwrap (fixture generated with:
//   lines = text.split("\n"); chain(textwrap.wrap(l, width=80, replace_whitespace=False,
//   drop_whitespace=False) if l else [""] for l in lines)), plus link stripping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { joinLines, stripLinks, wrapLines } from '../../src/tools/index.ts';

const cases = JSON.parse(readFileSync(new URL('../fixtures/tools/textwrap.json', import.meta.url), 'utf8')) as { text: string; lines: string[] }[];

test('wrapLines matches CPython textwrap for every fixture line', () => {
  assert.ok(cases.length >= 10);
  for (const c of cases) assert.deepEqual(wrapLines(c.text), c.lines, JSON.stringify(c.text));
});

test('joinLines numbers lines from the offset', () => {
  assert.equal(joinLines(['a', '', 'b'], true, 7), 'L7: a\nL8: \nL9: b');
  assert.equal(joinLines(['a', 'b']), 'a\nb');
});

test('stripLinks keeps link text and drops ids and domains, also for links cut at the edges', () => {
  assert.equal(stripLinks('see 【3†the guide】 and 【12†poster†example.org】.'), 'see the guide and poster.');
  assert.equal(stripLinks('uide】 then 【4†par'), ' then par');
});
