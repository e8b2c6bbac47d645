// bench/document.ts: a bench run replaces only the sections it owns in docs/BENCHMARKS.md (between
// marker comments) and keeps every hand-written byte; malformed markers are an error, not a guess.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { replaceSections } from '../../bench/document.ts';

const page = [
  '# Benchmarks',
  '',
  'Intro by hand: sections sit between `<!-- bench:NAME -->` lines.',
  '',
  '<!-- bench:machine -->',
  '## Machine',
  '- old machine',
  '<!-- /bench:machine -->',
  '',
  '### A second run, written by hand',
  'Its table | stays |',
  '',
  '<!-- bench:training -->',
  '## Training',
  'old figures',
  '<!-- /bench:training -->',
  '',
  'Closing note by hand.',
  '',
].join('\n');

test('a run replaces the bodies of the sections it measured and keeps everything else byte for byte', () => {
  const out = replaceSections(page, new Map([['training', '## Training\n\nnew figures\n\n']]));
  assert.equal(out, page.replace('## Training\nold figures', '## Training\n\nnew figures'));
  assert.ok(out.includes('- old machine'), 'a section not measured keeps its figures');
  assert.ok(out.includes('### A second run, written by hand\nIts table | stays |'));
  assert.ok(out.endsWith('Closing note by hand.\n'));
});

test('several sections at once, and a section the page lacks is appended with its markers', () => {
  const out = replaceSections(page, new Map([['machine', '## Machine\n- new machine'], ['training', '## Training\nnew'], ['serving', '## Serving\nrows']]));
  assert.equal(
    out,
    page.replace('- old machine', '- new machine').replace('old figures', 'new').trimEnd() + '\n\n<!-- bench:serving -->\n## Serving\nrows\n<!-- /bench:serving -->\n',
  );
  assert.equal(replaceSections(out, new Map([['serving', '## Serving\nrows']])), out, 'writing the same figures again changes nothing');
});

test('malformed markers are errors naming the section', () => {
  const one = (name: string, body: string): string => `<!-- bench:${name} -->\n${body}\n<!-- /bench:${name} -->\n`;
  assert.throws(() => replaceSections('<!-- bench:a -->\nno end\n', new Map([['a', 'x']])), /bench section "a" is never closed/);
  assert.throws(() => replaceSections('<!-- bench:a -->\n' + one('b', 'x') + '<!-- /bench:a -->\n', new Map()), /"b" starts inside section "a"/);
  assert.throws(() => replaceSections(one('a', 'x') + one('a', 'y'), new Map([['a', 'z']])), /"a" appears twice/);
  assert.throws(() => replaceSections('text\n<!-- /bench:a -->\n', new Map()), /closes a bench section that is not open/);
  assert.throws(() => replaceSections('', new Map([['bad name', 'x']])), /bench section name "bad name"/);
});

test('docs/BENCHMARKS.md has well-formed markers for every section bench/run.ts writes', () => {
  const doc = readFileSync(join(import.meta.dirname, '../../docs/BENCHMARKS.md'), 'utf8');
  assert.equal(replaceSections(doc, new Map()), doc);
  for (const name of ['machine', 'inference', 'tokenizer', 'serving', 'startup', 'training']) {
    assert.ok(doc.includes(`<!-- bench:${name} -->`) && doc.includes(`<!-- /bench:${name} -->`), `no markers for ${name}`);
  }
  // The hand-written analyses outside the markers survive a rerun of every section.
  const rerun = replaceSections(doc, new Map(['machine', 'inference', 'tokenizer', 'serving', 'startup', 'training'].map((n) => [n, `## ${n}\nnew`])));
  for (const kept of ['### Second run: 24 layers, 2 threads', '## Long prompts: flash-style attention and the bf16 KV cache', 'Before the package had a build']) {
    assert.ok(rerun.includes(kept), `lost: ${kept}`);
  }
});
