// `gptoss tool`: one tool call as the agent loop would make it, printed as the model receives it;
// exit 0 on success, 1 for a tool error, 2 for bad usage, 3 when the python code raised. Output-only
// cases call the CLI's main() in-process (test/cli/in-process.ts); the rest run bin/gptoss.js as a
// child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runCli } from '../cli/in-process.ts';

const BIN = fileURLToPath(new URL('../../bin/gptoss.js', import.meta.url));
const DOCS = fileURLToPath(new URL('../fixtures/docs', import.meta.url));

function gptoss(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'tool', ...args], { encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function inProcess(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const r = await runCli(['tool', ...args]);
  return { status: r.code, stdout: r.stdout, stderr: r.stderr };
}

test('browser: calls share one session; --harmony prints the rendered tool message', async () => {
  const r = gptoss('browser', '--docs', DOCS, 'search', '{"query": "spill kit"}', 'open', '{"id": 0}', 'find', '{"pattern": "nitrile"}');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\[0\] spill kit\n\*\*viewing lines/);
  assert.match(r.stdout, /\n\[1\] Reagent handling and spills \(local:\/\/docs\/safety\/reagent-handling\.html\)\n/);
  assert.match(r.stdout, /\n\[2\] Find results for text: `nitrile`/);
  const h = await inProcess('browser', '--docs', DOCS, '--harmony', 'search', '{"query": "freezer"}');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /^<\|start\|>browser\.search to=assistant<\|channel\|>analysis<\|message\|>\[0\] freezer\n[\s\S]*<\|end\|>\n$/);
});

test('browser: a tool error is printed as the model sees it, with status 1', async () => {
  const r = await inProcess('browser', '--docs', DOCS, 'open', '{"id": 3}');
  assert.equal(r.status, 1);
  assert.equal(r.stdout, 'No pages to access!\n');
});

test('browser: files left out of the collection are named on stderr with the reason', async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'gptoss-docs-'));
  try {
    writeFileSync(join(dir, 'notes.txt'), 'Freezer B holds the reagents.\n');
    writeFileSync(join(dir, 'scan.txt'), Buffer.from([0x25, 0x50, 0x44, 0x46, 0x00]));
    const r = await inProcess('browser', '--docs', dir, 'search', '{"query": "freezer"}');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Freezer B holds the reagents/);
    assert.equal(r.stderr, 'gptoss tool: skipped scan.txt: binary (contains NUL bytes)\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad usage exits 2 with a one-line message', async () => {
  for (const args of [
    ['browser', 'search', '{"query": "x"}'],
    ['browser', '--docs', DOCS, 'search', '{oops'],
    ['browser', '--docs', DOCS, 'click', '{}'],
    ['browser', '--docs', '/nonexistent/folder', 'search', '{"query": "x"}'],
    ['python'],
    ['python', '--code', 'print(1)', '--timeout', 'soon'],
    ['ruby', '--code', 'puts 1'],
  ]) {
    const r = await inProcess(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^gptoss tool: /);
  }
});

test('python: prints the output; an endless loop times out with status 1', async () => {
  const ok = await inProcess('python', '--code', 'x = 6 * 7');
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, '[WARN] No output available. Use print() to output anything to stdout to receive the output\n');
  const loop = await inProcess('python', '--timeout', '1', '--json', '--code', 'while True:\n    pass');
  assert.equal(loop.status, 1);
  const msg = JSON.parse(loop.stdout) as { author: { role: string; name: string }; recipient: string; channel: string; content: { text: string }[] };
  assert.deepEqual(msg.author, { role: 'tool', name: 'python' });
  assert.equal(msg.recipient, 'assistant');
  assert.equal(msg.channel, 'analysis');
  assert.equal(msg.content[0]!.text, '[ERROR] Execution timed out after 1.0 seconds and was stopped.');
});

test('python: code that raises or exits non-zero prints its traceback and exits 3', async () => {
  const raised = await inProcess('python', '--code', 'def f():\n    raise ValueError("boom")\nprint("before")\nf()');
  assert.equal(raised.status, 3, raised.stderr);
  assert.equal(raised.stdout, 'before\nTraceback (most recent call last):\n  File "<stdin>", line 4, in <module>\n  File "<stdin>", line 2, in f\nValueError: boom\n');
  const exited = await inProcess('python', '--code', 'import sys\nsys.exit(4)');
  assert.equal(exited.status, 3, exited.stderr);
  assert.equal(exited.stdout, 'exit status 4\n');
  const clean = await inProcess('python', '--code', 'import sys\nprint("done")\nsys.exit(0)');
  assert.equal(clean.status, 0, clean.stderr);
  assert.equal(clean.stdout, 'done\n');
});

test('python: a damaged boot snapshot is discarded and the interpreter boots normally', async () => {
  const { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync, readFileSync, statSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join, dirname } = await import('node:path');
  const { createRequire } = await import('node:module');
  const pyodideDir = dirname(createRequire(import.meta.url).resolve('pyodide/package.json'));
  const version = (JSON.parse(readFileSync(join(pyodideDir, 'package.json'), 'utf8')) as { version: string }).version;
  const cache = mkdtempSync(join(tmpdir(), 'gptoss-cache-'));
  mkdirSync(join(cache, 'gptoss'));
  const name = `pyodide-${version}-${statSync(join(pyodideDir, 'pyodide.asm.wasm')).size}.snapshot`;
  writeFileSync(join(cache, 'gptoss', name), 'not a snapshot');
  try {
    const r = spawnSync(process.execPath, [BIN, 'tool', 'python', '--code', 'print(6 * 7)'], { encoding: 'utf8', timeout: 180_000, env: { ...process.env, XDG_CACHE_HOME: cache } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '42\n');
    assert.ok(!readdirSync(join(cache, 'gptoss')).includes(name), 'the damaged snapshot was kept');
  } finally {
    // The run writes a fresh snapshot (tens of MB) into this cache.
    rmSync(cache, { recursive: true, force: true });
  }
});
