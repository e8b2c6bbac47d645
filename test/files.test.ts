// The files commands read must be regular files (src/files.ts): a FIFO named model.safetensors or
// config.json, given as --developer @FILE, as eval data or as the conversation gptoss render reads
// used to block forever (opening a FIFO for reading waits for a writer), and a folder was read as
// the tokenizer's ranks file or taken for one .safetensors file. Now each is one line and exit
// status 2, and a folder named *.safetensors is opened as the folder it is. Commands run in a child
// process, so a regression shows as a child that never exits; the spawn's kill timer is only the
// safety net that turns such a hang into a failure.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUserError } from '../src/errors.ts';
import { loadO200kBaseRanks } from '../src/tokenizer/ranks.ts';

const CLI = join(import.meta.dirname, '../bin/gptoss.js');
const GOLDEN = new URL('./fixtures/golden/gqa4-l2-e8k4/', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'gptoss-fifo-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Makes a FIFO at `path`; false when this system has no mkfifo. */
function mkfifo(path: string): boolean {
  const r = spawnSync('mkfifo', [path]);
  return r.error === undefined && r.status === 0;
}
const probe = join(work, 'probe');
const noFifo = process.platform === 'win32' || !mkfifo(probe) ? 'mkfifo is not available on this system' : false;

function gptoss(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr, stdout }));
  });
}

for (const name of ['model.safetensors', 'config.json']) {
  test(`a FIFO named ${name} is refused with one line, not waited on`, { skip: noFifo }, async () => {
    const dir = join(work, `fifo-${name.split('.')[0]}`);
    mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors']) if (f !== name) copyFileSync(join(GOLDEN, f), join(dir, f));
    assert.ok(mkfifo(join(dir, name)));
    const r = await gptoss(['logits', '--model', dir, '--tokens', '1,2', '--backend', 'reference']);
    assert.equal(r.signal, null, `the command hung and was killed: ${r.stderr}`);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.equal(lines[0], `gptoss logits: ${join(dir, name)}: is a named pipe (FIFO), not a regular file`);
  });
}

/** Runs `gptoss args` and checks it failed with exactly `line` on stderr, status 2, no hang. */
async function failsWithOneLine(args: string[], line: string): Promise<void> {
  const r = await gptoss(args);
  assert.equal(r.signal, null, `the command hung and was killed: ${r.stderr}`);
  assert.equal(r.code, 2, r.stderr);
  assert.deepEqual(r.stderr.trimEnd().split('\n'), [line]);
}

test('a FIFO as --developer @FILE is refused with one line, not waited on', { skip: noFifo }, async () => {
  const fifo = join(work, 'developer.txt');
  assert.ok(mkfifo(fifo));
  await failsWithOneLine(['chat', '--developer', `@${fifo}`, 'hi'], `gptoss chat: --developer @${fifo}: is a named pipe (FIFO), not a regular file`);
});

test('a FIFO as eval data or as the classify policy is refused with one line, not waited on', { skip: noFifo }, async () => {
  const fifo = join(work, 'cases.jsonl');
  assert.ok(mkfifo(fifo));
  const out = join(work, 'eval-out');
  await failsWithOneLine(['eval', 'mcq', '--data', fifo, '--model', 'http://127.0.0.1:9/v1', '--out', out], `gptoss eval: ${fifo}: is a named pipe (FIFO), not a regular file`);
  const gold = join(work, 'gold.jsonl');
  writeFileSync(gold, '{"text": "x", "label": "0"}\n');
  await failsWithOneLine(['eval', 'classify', '--policy', fifo, '--data', gold, '--model', 'http://127.0.0.1:9/v1', '--out', out], `gptoss eval: --policy ${fifo}: is a named pipe (FIFO), not a regular file`);
});

test('a FIFO as the conversation file of gptoss render is refused with one line, not waited on', { skip: noFifo }, async () => {
  const fifo = join(work, 'conversation.json');
  assert.ok(mkfifo(fifo));
  await failsWithOneLine(['render', fifo], `gptoss render: ${fifo}: is a named pipe (FIFO), not a regular file`);
});

test('a folder named *.safetensors is opened as a folder of weight files', async () => {
  const dir = join(work, 'golden.safetensors');
  cpSync(GOLDEN, dir, { recursive: true });
  const r = await gptoss(['logits', '--model', dir, '--tokens', '1,2', '--backend', 'reference']);
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual(r.stdout.trim(), '');
});

test('a folder in the place of the tokenizer ranks file is a one-line error, not a raw EISDIR', () => {
  const dir = join(work, 'ranks-folder');
  mkdirSync(dir);
  assert.throws(
    () => loadO200kBaseRanks(dir),
    (e: unknown) => isUserError(e) && e.message === `${dir}: is a folder, not a file`,
  );
});
