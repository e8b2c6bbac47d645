// The progress display of pull/synth/convert: a redrawn bar on a terminal, plain lines (one per
// 10%) when stderr is a file or pipe, nothing when quiet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, formatBytes } from '../../src/cli/progress.ts';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const stream = { isTTY, write: (s: string) => { out += s; return true; } } as unknown as NodeJS.WriteStream;
  return { stream, text: () => out };
}

test('plain output: a line per 10% step and a final line, no control characters', () => {
  const f = fakeStream(false);
  const p = createProgress({ stream: f.stream });
  p.start('original/model.safetensors', 1000);
  for (let i = 0; i < 100; i++) p.advance(10);
  p.done('done');
  const lines = f.text().trim().split('\n');
  assert.ok(!f.text().includes('\x1b') && !f.text().includes('\r'));
  assert.equal(lines[0], 'original/model.safetensors: 0% (10 B of 1.0 KB)');
  assert.equal(lines[lines.length - 1], 'original/model.safetensors: done (1.0 KB)');
  assert.ok(lines.length >= 2 && lines.length <= 12);
});

test('terminal output: the bar is redrawn in place and ends with the note', () => {
  const f = fakeStream(true);
  const p = createProgress({ stream: f.stream });
  p.start('x.bin', 2_000_000, 500_000);
  p.log('x.bin: resuming at 500 KB');
  p.advance(1_500_000);
  p.done('done (resumed)');
  const t = f.text();
  assert.ok(t.startsWith('\r\x1b[Kx.bin ['));
  assert.ok(t.includes('\r\x1b[Kx.bin: resuming at 500 KB\n'));
  assert.match(t, /\[#{24}\] 100% 2\.0 MB\/2\.0 MB .* done \(resumed\)\n$/);
});

test('quiet writes nothing; sizes are decimal units', () => {
  const f = fakeStream(true);
  const p = createProgress({ stream: f.stream, quiet: true });
  p.start('a', 10);
  p.advance(10);
  p.done();
  assert.equal(f.text(), '');
  assert.equal(formatBytes(13_761_301_456), '13.8 GB');
  assert.equal(formatBytes(999), '999 B');
});
