// What serve, chat and the library's startServer share at start-up (src/server/startup.ts): the
// browser's documents open at once and the files left out are told once the index is ready (one
// line each, or a summary when many); a port in use is a one-line usage error naming the setting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUserError } from '../../src/errors.ts';
import { createServer } from '../../src/server/index.ts';
import { ScriptedEngine } from '../../src/engine/scripted.ts';
import { listen, openDocuments, skippedFileLines } from '../../src/server/startup.ts';

test('openDocuments reports each file left out, with the reason, once the index is ready', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-serving-'));
  try {
    writeFileSync(join(dir, 'guide.md'), '# Guide\n\nWash hands.\n');
    writeFileSync(join(dir, 'notes.txt'), Buffer.from([0x50, 0x44, 0x46, 0x00, 0x01]));
    const lines: string[] = [];
    const docs = await openDocuments(dir, (line) => lines.push(line));
    await docs.indexed;
    assert.deepEqual(lines, ['browser: left out notes.txt (binary (contains NUL bytes))']);
    assert.deepEqual(docs.paths, ['guide.md']);
    // Nothing left out: nothing said.
    const quiet: string[] = [];
    rmSync(join(dir, 'notes.txt'));
    await (await openDocuments(dir, (line) => quiet.push(line))).indexed;
    assert.deepEqual(quiet, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('many files left out become one summary line, counted by reason', () => {
  const few = skippedFileLines([{ path: 'a.md', reason: '6.2 MiB, over the 5 MiB limit' }]);
  assert.deepEqual(few, ['browser: left out a.md (6.2 MiB, over the 5 MiB limit)']);
  const many = [
    ...Array.from({ length: 8 }, (_, i) => ({ path: `scan${i}.txt`, reason: 'binary (contains NUL bytes)' })),
    ...Array.from({ length: 4 }, (_, i) => ({ path: `big${i}.md`, reason: `${6 + i} MiB, over the 5 MiB limit` })),
  ];
  assert.deepEqual(skippedFileLines(many), ['browser: left out 12 files (8 binary (contains NUL bytes); 4 over the 5 MiB limit), e.g. scan0.txt']);
});

test('a port in use is a usage error naming the setting to change', async () => {
  const first = await createServer({ engine: new ScriptedEngine([]), log: () => {} }).listen(0, '127.0.0.1');
  try {
    const second = createServer({ engine: new ScriptedEngine([]), log: () => {} });
    await assert.rejects(listen(second, first.port, '127.0.0.1', { port: '--port', host: '--host' }), (e: unknown) => {
      assert.ok(isUserError(e));
      assert.equal(e.message, `port ${first.port} on 127.0.0.1 is already in use (change --port)`);
      return true;
    });
  } finally {
    await first.close();
  }
});
